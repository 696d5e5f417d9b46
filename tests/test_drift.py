"""The drift alarm (DESIGN invariant 6): master or staging moved behind Releaseboard's
back with plain git is detected, recorded, shown, and stops promotions into it until a
release manager adopts the new head or resets staging from master."""

from __future__ import annotations

import pytest

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.policy import guard
from releaseboard.policy import service as policy
from releaseboard.policy.models import DriftAlarm, DriftState
from releaseboard.releases import services, sync
from releaseboard.releases.models import PromotionState
from tests.conftest import run_jobs
from tests.flows import passed_promotion
from tests.flows import sync as sync_now

pytestmark = pytest.mark.django_db(transaction=True)


def _ready(repository, actor):
    services.refresh(repository, actor=actor)
    run_jobs()
    repository.refresh_from_db()


def test_a_direct_push_to_staging_raises_an_alarm_naming_the_commit_and_its_author(repository, remote, developer):
    _ready(repository, developer)
    before = remote.head("staging")
    theirs = remote.commit_on("staging", {"direct.py": "D = 1\n"}, "Hot edit, pushed by hand")

    sync_now(repository, developer)

    alarm = DriftAlarm.objects.get(repository=repository, branch_name="staging", state=DriftState.OPEN)
    assert (alarm.expected_sha, alarm.found_sha) == (before, theirs)
    assert alarm.authors == ["Dev One"] and alarm.commits[0]["subject"] == "Hot edit, pushed by hand"
    event = AuditEvent.objects.get(action="drift.detected")
    assert event.result == "violation" and event.from_sha == before and event.to_sha == theirs
    assert event.details["commits"][0]["sha"] == theirs and "Dev One <dev1@example.com>" in event.message


def test_the_alarm_is_shown_to_everyone_on_every_page(client, repository, remote, developer, ops):
    _ready(repository, developer)
    remote.commit_on("master", {"direct.py": "D = 1\n"}, "Pushed straight to master")
    sync_now(repository, developer)

    client.force_login(ops)
    for url in ("/", f"/r/{repository.name}/", "/jobs/"):
        page = client.get(url).content.decode()
        assert "Policy violation in shop" in page and "Dev One" in page, url


def test_promotions_into_a_drifted_staging_are_refused_until_a_release_manager_adopts_it(
    repository, remote, developer, release_manager
):
    _ready(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "waits")
    remote.commit_on("staging", {"direct.py": "D = 1\n"}, "Hot edit, pushed by hand")
    sync_now(repository, developer)
    alarm = DriftAlarm.objects.get(state=DriftState.OPEN)

    with pytest.raises(services.Refused, match="changed outside Releaseboard.*Dev One"):
        services.promote(promotion, actor=release_manager)
    with pytest.raises(services.Refused, match="Say why"):
        policy.adopt_head(alarm, actor=release_manager, reason=" ", found_sha=alarm.found_sha)
    with pytest.raises(services.Refused, match="moved again"):
        policy.adopt_head(alarm, actor=release_manager, reason="Reviewed", found_sha=alarm.expected_sha)
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        policy.adopt_head(alarm, actor=developer, reason="Looks fine", found_sha=alarm.found_sha)

    policy.adopt_head(
        alarm, actor=release_manager, reason="Reviewed the hot edit with Dev One", found_sha=alarm.found_sha
    )
    services.promote(promotion, actor=release_manager)
    run_jobs()

    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED and remote.head("staging") == promotion.merge_sha
    adopted = AuditEvent.objects.get(action="drift.adopted")
    assert adopted.actor_name == "rm" and adopted.message == "Reviewed the hot edit with Dev One"
    assert not DriftAlarm.objects.filter(state=DriftState.OPEN).exists()  # its own push raised nothing


def test_a_drift_found_by_the_promote_job_itself_stops_it_before_the_push(
    repository, remote, developer, release_manager, settings
):
    settings.PROMOTION_MAX_RETESTS = 3
    _ready(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "queued")
    services.promote(promotion, actor=release_manager)
    theirs = remote.commit_on("staging", {"direct.py": "D = 1\n"}, "Pushed while the promotion was queued")

    run_jobs()

    # The promote job saw staging move, re-tested the merge on top, and refused to push.
    last = Job.objects.filter(kind="promote", subject_id=promotion.pk).order_by("id").last()
    assert last.state == JobState.FAILED and last.reason == JobReason.REFUSED
    assert "changed outside Releaseboard" in last.message
    assert remote.head("staging") == theirs
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.FAILED


def test_a_direct_push_to_master_stops_releases_until_adopted(repository, remote, developer, release_manager):
    _ready(repository, developer)
    passed = passed_promotion(repository, remote, developer, "one")
    services.promote(passed, actor=release_manager)
    run_jobs()
    remote.commit_on("master", {"direct.py": "D = 1\n"}, "Pushed straight to master")
    sync_now(repository, developer)

    assert guard.open_alarms(repository, "master")
    assert "master was changed outside Releaseboard" in guard.release_refusal(repository)


def test_releaseboards_own_promotions_releases_and_copies_raise_no_alarm(
    repository, remote, developer, release_manager
):
    _ready(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "own")
    services.promote(promotion, actor=release_manager)
    run_jobs()
    repository.refresh_from_db()
    services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")
    run_jobs()
    services.copy_master_to_staging(repository, actor=release_manager)
    run_jobs()
    sync_now(repository, developer)

    assert remote.exists("refs/tags/v0.1.0")
    assert not DriftAlarm.objects.exists() and not AuditEvent.objects.filter(action="drift.detected").exists()


def test_copying_master_to_staging_resolves_a_staging_alarm(repository, remote, developer, release_manager):
    _ready(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "after-reset")
    remote.commit_on("staging", {"direct.py": "D = 1\n"}, "Hot edit, pushed by hand")
    sync_now(repository, developer)
    assert guard.open_alarms(repository, "staging")

    services.copy_master_to_staging(repository, actor=release_manager)
    run_jobs()

    assert remote.head("staging") == remote.head("master")
    assert not guard.open_alarms(repository)  # in force at once, without waiting for a sync
    services.retest_promotion(promotion, actor=developer)
    run_jobs()
    assert DriftAlarm.objects.get().state == DriftState.RESET  # the next job closes it formally
    assert AuditEvent.objects.filter(action="drift.reset").count() == 1


def test_beat_polling_finds_a_direct_push_and_the_sync_it_queues_raises_the_alarm(repository, remote, developer):
    _ready(repository, developer)
    remote.commit_on("staging", {"direct.py": "D = 1\n"}, "Pushed by hand")

    assert sync.poll_remotes() == 1
    run_jobs()

    assert DriftAlarm.objects.filter(branch_name="staging", state=DriftState.OPEN).exists()
