"""Deployments: real releases, real deploy commands in the sandbox, jobs run in-process."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from releaseboard.audit.models import AuditEvent
from releaseboard.deployments import incidents, services
from releaseboard.deployments.models import Deployment, DeploymentCommit, Environment, Incident
from releaseboard.jobs.models import Job, JobLogLine
from releaseboard.policy.models import Lock
from tests.conftest import run_jobs
from tests.deploy_flows import deployed, environments, release

# Committed data: a job that runs longer than a heartbeat renews its lease from another
# connection, which must see the job's row (on PostgreSQL a test transaction would hide it).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def envs(repository, tmp_path):
    return environments(repository, tmp_path / "envs")


def _deploy(environment: Environment, **kwargs) -> Deployment:
    deployment = services.deploy(environment, **kwargs)
    run_jobs()
    deployment.refresh_from_db()
    return deployment


def test_a_release_goes_to_staging_then_production_with_its_version_and_sha(
    repository, remote, developer, release_manager, ops, envs, tmp_path
):
    staging, production = envs
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")

    first = _deploy(staging, actor=release_manager, release=v1)
    assert first.state == "succeeded", first.state_message
    assert deployed(tmp_path / "envs", staging) == ["0.1.0", v1.sha]

    prod = _deploy(production, actor=ops, release=v1)
    assert prod.state == "succeeded", prod.state_message
    assert deployed(tmp_path / "envs", production) == ["0.1.0", v1.sha]
    production.refresh_from_db()
    assert production.current == prod and prod.previous is None
    log = "".join(JobLogLine.objects.filter(job=prod.job).values_list("text", flat=True))
    assert "was nothing" in log and "smoke test passed" in log
    actions = list(
        AuditEvent.objects.filter(object_type="deployment", object_id=prod.pk)
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions == ["deployment.deploy.requested", "deployment.deploy.succeeded"]
    # The feature commit reached production with its branch; its lead time is recorded once.
    rows = list(DeploymentCommit.objects.filter(deployment=prod))
    assert {r.branch_name for r in rows} >= {"feature/one"}
    assert all(r.lead_seconds >= 0 for r in rows)


def test_a_release_never_on_staging_is_refused_in_production_without_an_override(
    repository, remote, developer, release_manager, ops, envs
):
    _, production = envs
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")

    with pytest.raises(services.Refused, match="never deployed to a staging-tier environment"):
        services.deploy(production, actor=ops, release=v1)
    with pytest.raises(PermissionDenied):
        services.deploy(production, actor=developer, release=v1, override_reason="I know better")
    assert not Deployment.objects.exists() and not Job.objects.filter(kind="deploy").exists()

    forced = _deploy(production, actor=release_manager, release=v1, override_reason="Staging is down; customer fix")
    assert forced.state == "succeeded"
    event = AuditEvent.objects.get(object_type="deployment", object_id=forced.pk, action="deployment.deploy.requested")
    assert event.details["override"] is True and "Staging is down" in event.message


def test_a_failing_deploy_leaves_the_environment_on_its_previous_version_with_a_clear_message(
    repository, remote, developer, release_manager, envs, tmp_path
):
    staging, _ = envs
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    v2 = release(repository, remote, developer, release_manager, "two", "0.2.0")
    good = _deploy(staging, actor=release_manager, release=v1)
    (tmp_path / "envs" / "staging" / "FAIL").write_text("")

    bad = _deploy(staging, actor=release_manager, release=v2)

    assert bad.state == "failed"
    assert "stays on v0.1.0" in bad.state_message and "deploy command failed" in bad.state_message
    assert bad.job is not None and bad.job.reason == "deploy_failed"
    log = "".join(JobLogLine.objects.filter(job=bad.job).values_list("text", flat=True))
    assert "FAIL exists" in log
    staging.refresh_from_db()
    assert staging.current == good
    assert deployed(tmp_path / "envs", staging) == ["0.1.0", v1.sha]
    assert AuditEvent.objects.filter(
        object_type="deployment", object_id=bad.pk, action="deployment.deploy.failed"
    ).exists()


def test_a_rollback_pins_production_until_someone_deploys_forward_on_purpose(
    repository, remote, developer, release_manager, ops, envs, tmp_path
):
    staging, production = envs
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    v2 = release(repository, remote, developer, release_manager, "two", "0.2.0")
    for version in (v1, v2):
        _deploy(staging, actor=release_manager, release=version)
        _deploy(production, actor=ops, release=version)

    with pytest.raises(services.Refused, match="Say why"):
        services.rollback(production, actor=ops, release=v1, reason=" ")
    back = services.rollback(production, actor=ops, release=v1, reason="Checkout is broken")
    run_jobs()
    back.refresh_from_db()
    assert back.state == "succeeded" and back.kind == "rollback"
    assert deployed(tmp_path / "envs", production) == ["0.1.0", v1.sha]
    production.refresh_from_db()
    assert production.current == back and back.previous is not None and back.previous.version == "0.2.0"

    with pytest.raises(services.Refused, match="pinned to v0.1.0 by a rollback"):
        services.deploy(production, actor=ops, release=v2)
    again = _deploy(production, actor=ops, release=v1)  # the same release: a redeploy, allowed while pinned
    assert again.kind == "redeploy" and again.state == "succeeded"
    forward = _deploy(production, actor=ops, release=v2, forward=True)
    assert forward.state == "succeeded" and deployed(tmp_path / "envs", production)[0] == "0.2.0"


def test_an_incident_is_resolved_by_the_next_production_deployment_or_closed_by_hand(
    repository, remote, developer, release_manager, ops, envs
):
    staging, production = envs
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    v2 = release(repository, remote, developer, release_manager, "two", "0.2.0")
    for version in (v1, v2):
        _deploy(staging, actor=release_manager, release=version)
    _deploy(production, actor=ops, release=v1)
    bad = _deploy(production, actor=ops, release=v2)

    with pytest.raises(PermissionDenied):
        incidents.open_incident(bad, actor=developer, started_at=None, description="x")
    incident = incidents.open_incident(
        bad, actor=ops, started_at=None, description="Checkout 500s", link="https://status/1"
    )
    assert incident.is_open
    fix = _deploy(production, actor=ops, release=v1, kind="rollback", reason="Checkout 500s")
    incident.refresh_from_db()
    assert incident.resolved_by_deployment == fix and not incident.is_open

    other = incidents.open_incident(fix, actor=ops, started_at=None, description="Slow pages")
    incidents.close_incident(other, actor=ops, note="A cache was cold; no deploy needed")
    other.refresh_from_db()
    assert other.closed_by == ops and other.resolved_by_deployment is None
    with pytest.raises(services.Refused, match="resolved already"):
        incidents.close_incident(other, actor=ops, note="again")
    assert Incident.objects.count() == 2


def test_a_locked_environment_a_repository_lock_and_a_freeze_window_stop_deploys(
    repository, remote, developer, release_manager, ops, envs
):
    staging, production = envs
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    services.lock_environment(staging, actor=ops, reason="Load test running")
    with pytest.raises(services.Refused, match="locked by ops: “Load test running”"):
        services.deploy(staging, actor=release_manager, release=v1)
    services.unlock_environment(staging, actor=ops)
    _deploy(staging, actor=release_manager, release=v1)

    from django.utils import timezone

    Lock.objects.create(
        repository=repository, reason="Black Friday", locked_by=release_manager, locked_at=timezone.now()
    )
    with pytest.raises(services.Refused, match="Production deploys wait"):
        services.deploy(production, actor=ops, release=v1)
    Lock.objects.filter(repository=repository).update(lifted_at=timezone.now())
    # A freeze window (here: all day, every day) stops production deploys as it stops releases.
    from datetime import time

    from releaseboard.policy.models import FreezeWindow

    FreezeWindow.objects.create(
        repository=repository, weekdays=list(range(7)), start=time(0), end=time(0), time_zone="UTC"
    )
    with pytest.raises(services.Refused, match="freeze window"):
        services.deploy(production, actor=ops, release=v1)
    assert _deploy(staging, actor=release_manager, release=v1).kind == "redeploy"  # staging is not frozen


def test_developers_deploy_only_to_unprotected_environments(repository, remote, developer, release_manager, envs):
    staging, _ = envs
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    with pytest.raises(PermissionDenied):
        services.deploy(staging, actor=developer, release=v1)
    Environment.objects.filter(pk=staging.pk).update(protected=False)
    staging.refresh_from_db()
    assert _deploy(staging, actor=developer, release=v1).state == "succeeded"


def test_auto_deploy_puts_each_new_release_on_staging(repository, remote, developer, release_manager, envs, tmp_path):
    staging, production = envs
    Environment.objects.filter(pk__in=[staging.pk, production.pk]).update(auto_deploy=True)
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    run_jobs()
    staging.refresh_from_db()
    assert staging.current is not None and staging.current.release == v1
    assert deployed(tmp_path / "envs", staging) == ["0.1.0", v1.sha]
    # Production auto-deploy waits for staging: it was refused and said so in the audit log.
    assert AuditEvent.objects.filter(action="deployment.auto_skipped", message__contains="production").exists()


def test_one_deployment_at_a_time_per_environment(repository, remote, developer, release_manager, envs):
    from datetime import timedelta

    from django.utils import timezone

    from releaseboard.jobs.models import Lease

    staging, _ = envs
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    first = services.deploy(staging, actor=release_manager, release=v1)
    with pytest.raises(services.Refused, match="one deployment at a time per environment"):
        services.deploy(staging, actor=release_manager, release=v1)
    # The runner holds the environment's lease: while another job holds it, the deploy waits.
    Lease.objects.create(
        key=staging.lock_key, holder_job_id=999, holder_token="other", expires_at=timezone.now() + timedelta(seconds=2)
    )
    run_jobs()
    first.refresh_from_db()
    assert first.state == "succeeded"
    log = "".join(JobLogLine.objects.filter(job=first.job).values_list("text", flat=True))
    assert f"Waiting for {staging.lock_key}" in log


def test_a_deploy_command_sees_its_four_variables_and_none_of_the_workers_secrets(
    repository, remote, developer, release_manager, envs
):
    staging, _ = envs
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    Environment.objects.filter(pk=staging.pk).update(deploy_command="env")
    staging.refresh_from_db()
    done = _deploy(staging, actor=release_manager, release=v1)
    log = "".join(JobLogLine.objects.filter(job=done.job).values_list("text", flat=True))
    for line in ("RELEASEBOARD_ENVIRONMENT=staging", "RELEASEBOARD_VERSION=0.1.0", f"RELEASEBOARD_SHA={v1.sha}"):
        assert line in log
    assert "RELEASEBOARD_PREVIOUS_VERSION=" in log
    for secret in ("RELEASEBOARD_VAR_DIR", "DATABASE_URL", "SECRET_KEY", "CELERY_BROKER_URL"):
        assert secret not in log


def test_a_staging_head_environment_follows_each_promotion_on_its_own(
    repository, remote, developer, release_manager, tmp_path
):
    from releaseboard.deployments import demo
    from releaseboard.deployments.models import Source, Tier
    from releaseboard.releases import services as releases
    from tests.flows import passed_promotion

    root = tmp_path / "envs"
    staging = Environment.objects.create(
        repository=repository,
        name="staging",
        tier=Tier.STAGING,
        source=Source.STAGING_HEAD,
        auto_deploy=True,
        deploy_command=demo.deploy_command(root),
    )
    promotion = passed_promotion(repository, remote, developer, "auto")
    releases.promote(promotion, actor=release_manager)
    run_jobs()

    staging.refresh_from_db()
    head = remote.head("staging")
    assert staging.current is not None and staging.current.sha == head and staging.current.requested_by is None
    assert staging.current.version == f"staging-{head[:10]}"
    assert deployed(root, staging) == [f"staging-{head[:10]}", head]
