"""Each DORA figure against values computed by hand on a small fixed history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from releaseboard.deployments.models import Deployment, DeploymentCommit, Environment, Incident, Tier
from releaseboard.metrics import bands, compute
from releaseboard.releases.models import Repository

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H, D = 3600, 86400


def _at(seconds_ago: float) -> datetime:
    return NOW - timedelta(seconds=seconds_ago)


def _finished(deployment: Deployment) -> datetime:
    assert deployment.finished_at is not None  # every deployment of this history has finished
    return deployment.finished_at


def _deployment(env: Environment, version: str, finished: datetime, **kw) -> Deployment:
    return Deployment.objects.create(
        environment=env,
        repository=env.repository,
        tier=env.tier,
        version=version,
        sha=f"{abs(hash(version + str(finished))):040x}"[:40],
        created_at=finished - timedelta(minutes=5),
        finished_at=finished,
        state=kw.pop("state", "succeeded"),
        **kw,
    )


@pytest.fixture
def history(db):
    """Five production deployments in the last 30 days (d1..d5, d5 rolls d4 back), one older, one failed,
    one on staging; two incidents; five commits in the window and one before it."""
    repo = Repository.objects.create(name="shop", remote_url="/tmp/x", test_command="true")
    prod = Environment.objects.create(repository=repo, name="production", tier=Tier.PRODUCTION, deploy_command="true")
    stage = Environment.objects.create(repository=repo, name="staging", tier=Tier.STAGING, deploy_command="true")
    d0 = _deployment(prod, "0.9.0", _at(40 * D))
    d1 = _deployment(prod, "1.0.0", _at(20 * D), previous=d0)
    d2 = _deployment(prod, "0.9.0", _at(20 * D - 3 * H), kind="rollback", previous=d1, reason="broken")
    d3 = _deployment(prod, "1.0.1", _at(10 * D), hotfix=True, previous=d2)
    d4 = _deployment(prod, "1.1.0", _at(5 * D), previous=d3)
    _deployment(prod, "1.0.1", _at(4 * D), kind="rollback", previous=d4, reason="slow")
    _deployment(prod, "1.2.0", _at(3 * D), state="failed")
    _deployment(stage, "1.2.0", _at(3 * D))
    Incident.objects.create(
        repository=repo,
        cause=d1,
        started_at=_at(20 * D - H),
        resolved_at=d2.finished_at,
        resolved_by_deployment=d2,
        description="500s",
    )
    Incident.objects.create(
        repository=repo, cause=d3, started_at=_at(9 * D), resolved_at=_at(8 * D), description="slow"
    )
    for i, lead in enumerate([H, 2 * H, D, 3 * D, 10 * D]):
        DeploymentCommit.objects.create(
            deployment=d4,
            repository=repo,
            sha=f"{i:040d}",
            authored_at=_at(5 * D + lead),
            started_at=_at(5 * D + lead),
            deployed_at=_finished(d4),
            lead_seconds=lead,
        )
    DeploymentCommit.objects.create(
        deployment=d0,
        repository=repo,
        sha="f" * 40,
        authored_at=_at(41 * D),
        started_at=_at(41 * D),
        deployed_at=_finished(d0),
        lead_seconds=D,
    )
    return repo


def test_deployment_frequency_counts_successful_production_deployments_per_week(history):
    f = compute.report([history.pk], 30, NOW).figure("frequency")
    assert (f.numerator, f.denominator) == (5, 30 / 7)
    assert f.value == pytest.approx(5 / (30 / 7))  # 1.17 a week
    assert f.band == "high"


def test_lead_time_is_the_nearest_rank_median_and_p90_of_commits_reaching_production(history):
    report = compute.report([history.pk], 30, NOW)
    median, p90 = report.figure("lead_median"), report.figure("lead_p90")
    assert median.denominator == p90.denominator == 5
    assert median.value == D  # rank ceil(0.5 * 5) = 3 of [1h, 2h, 1d, 3d, 10d]
    assert p90.value == 10 * D  # rank ceil(0.9 * 5) = 5
    assert median.band == "high"  # one day is not "less than one day"


def test_change_failure_rate_counts_deployments_that_caused_an_incident_or_were_rolled_back(history):
    f = compute.report([history.pk], 30, NOW).figure("failure_rate")
    # d1 and d3 caused incidents, d4 was rolled back; d2 and d5 (rollbacks) did neither
    assert (f.numerator, f.denominator) == (3, 5)
    assert f.value == pytest.approx(0.6)
    assert f.band == "low"


def test_time_to_restore_is_the_median_from_incident_start_to_its_resolution(history):
    f = compute.report([history.pk], 30, NOW).figure("restore")
    assert f.denominator == 2
    assert f.value == 2 * H  # [2 h (by the rollback), 1 day (closed by hand)]: rank 1
    assert f.band == "high"


def test_rework_rate_counts_rollbacks_and_hotfix_releases(history):
    f = compute.report([history.pk], 30, NOW).figure("rework")
    assert (f.numerator, f.denominator) == (3, 5)  # d2 and d5 roll back, d3 is a hotfix
    assert f.value == pytest.approx(0.6)


def test_weekly_buckets_hold_every_deployment_of_the_window_once(history):
    weeks = compute.report([history.pk], 30, NOW).weeks
    assert sum(w.deployments for w in weeks) == 5 and sum(w.failures for w in weeks) == 3
    assert all(w.start.weekday() == 0 for w in weeks)


def test_an_empty_window_has_no_figures_rather_than_zeroes(history):
    report = compute.report([history.pk], 30, NOW + timedelta(days=400))
    assert report.figure("failure_rate").value is None and report.figure("lead_median").value is None
    assert report.figure("frequency").value == 0


def test_bands_follow_the_thresholds_in_docs():
    assert bands.deployment_frequency(7) == "elite" and bands.deployment_frequency(0.2) == "low"
    assert bands.lead_time(D - 1) == "elite" and bands.lead_time(40 * D) == "low"
    assert bands.change_failure_rate(0.05) == "elite" and bands.change_failure_rate(0.15) == "medium"
    assert bands.time_to_restore(H - 1) == "elite" and bands.time_to_restore(8 * D) == "low"


def test_the_metrics_page_shows_each_figure_with_its_working_and_links_to_its_rows(history, client, developer):
    client.force_login(developer)
    # The fixture's history ends at a fixed NOW; the page counts back from today.
    shift = datetime.now(UTC) - NOW
    for d in Deployment.objects.all():
        Deployment.objects.filter(pk=d.pk).update(finished_at=_finished(d) + shift)
    for i in Incident.objects.all():
        assert i.resolved_at is not None  # both incidents of the history are resolved
        Incident.objects.filter(pk=i.pk).update(started_at=i.started_at + shift, resolved_at=i.resolved_at + shift)
    for c in DeploymentCommit.objects.all():
        DeploymentCommit.objects.filter(pk=c.pk).update(deployed_at=c.deployed_at + shift)
    page = client.get(reverse("web:metrics", args=["shop"]), {"days": 30}).content.decode()
    assert "3 caused an incident or were rolled back / 5 production deployments" in page
    assert "3 rollbacks or hotfix releases / 5 production deployments" in page
    assert "<svg" in page and "<script" not in page.split("<main>")[1]
    rows = client.get(reverse("web:metric_rows", args=["shop", "failure_rate"]), {"days": 30, "only": "numerator"})
    assert rows.context["total"] == 5 and len(rows.context["deployments"]) == 3
    assert client.get(reverse("web:metrics_all")).status_code == 200
    assert client.get(reverse("web:metric_rows", args=["shop", "nonsense"])).status_code == 404
