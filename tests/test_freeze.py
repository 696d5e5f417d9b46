"""Freeze windows (pure rules), "stop the line" locks and hotfix exceptions, on real git remotes."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.policy import guard, rules
from releaseboard.policy import service as policy
from releaseboard.releases import services
from releaseboard.releases.models import PromotionState
from releaseboard.roles import Role
from tests.conftest import _user, run_jobs
from tests.flows import passed_promotion

ALL_DAYS = range(7)


def window(days, start, end, zone="UTC") -> rules.Window:
    return rules.Window(frozenset(days), time(*start), time(*end), zone)


# -- rules (pure) ------------------------------------------------------------------------


def test_a_window_covers_its_weekday_and_time_range_only():
    friday_afternoon = window([4], (14, 0), (18, 0))
    assert rules.current([friday_afternoon], datetime(2024, 5, 10, 15, 0, tzinfo=UTC))  # a Friday
    assert not rules.current([friday_afternoon], datetime(2024, 5, 10, 18, 0, tzinfo=UTC))  # end is exclusive
    assert not rules.current([friday_afternoon], datetime(2024, 5, 9, 15, 0, tzinfo=UTC))  # Thursday


def test_a_window_whose_end_is_not_after_its_start_runs_into_the_next_day():
    friday_night = window([4], (22, 0), (6, 0))
    assert rules.current([friday_night], datetime(2024, 5, 11, 5, 59, tzinfo=UTC))  # Saturday early
    assert not rules.current([friday_night], datetime(2024, 5, 11, 22, 30, tzinfo=UTC))  # Saturday night
    whole_day = window([0], (0, 0), (0, 0))
    freeze = rules.current([whole_day], datetime(2024, 5, 13, 23, 59, tzinfo=UTC))
    assert freeze and freeze.ends_at == datetime(2024, 5, 14, 0, 0, tzinfo=UTC)


def test_a_window_keeps_its_local_hours_across_daylight_saving_time():
    berlin_morning = window([6], (9, 0), (10, 0), "Europe/Berlin")
    winter = rules.current([berlin_morning], datetime(2024, 3, 24, 8, 30, tzinfo=UTC))  # 09:30 CET
    summer = rules.current([berlin_morning], datetime(2024, 3, 31, 7, 30, tzinfo=UTC))  # 09:30 CEST
    assert winter and winter.starts_at == datetime(2024, 3, 24, 8, 0, tzinfo=UTC)
    assert summer and summer.starts_at == datetime(2024, 3, 31, 7, 0, tzinfo=UTC)
    assert not rules.current([berlin_morning], datetime(2024, 3, 31, 8, 30, tzinfo=UTC))  # 10:30 CEST


def test_the_next_freeze_is_the_earliest_start_after_now():
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)  # Friday noon
    upcoming = rules.upcoming([window([0], (8, 0), (9, 0)), window([4], (16, 0), (17, 0))], now)
    assert upcoming and upcoming.starts_at == datetime(2024, 5, 10, 16, 0, tzinfo=UTC)
    assert rules.upcoming([window([], (8, 0), (9, 0))], now) is None


def test_only_iana_time_zones_are_valid():
    assert rules.valid_zone("Europe/Berlin") and rules.valid_zone("UTC")
    assert not rules.valid_zone("Mars/Olympus") and not rules.valid_zone("../etc/passwd") and not rules.valid_zone("")


# -- locks, freezes and exceptions on real remotes ------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


def _ready(repository, actor):
    services.refresh(repository, actor=actor)
    run_jobs()
    repository.refresh_from_db()


def _freeze_now(repository, actor):
    return policy.add_window(
        repository,
        actor=actor,
        weekdays=ALL_DAYS,
        start=time(0, 0),
        end=time(0, 0),
        time_zone="Europe/Berlin",
        reason="Always frozen (test)",
    )


@pytestmark_db
def test_a_lock_refuses_promotions_until_it_is_lifted(repository, remote, developer, release_manager):
    _ready(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "locked")
    policy.lock(repository, actor=release_manager, reason="Incident 42")

    with pytest.raises(services.Refused, match="locked by rm.*Incident 42"):
        services.promote(promotion, actor=release_manager)

    policy.unlock(repository, actor=release_manager)
    services.promote(promotion, actor=release_manager)
    run_jobs()
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED
    actions = list(AuditEvent.objects.filter(action__startswith="policy.").values_list("action", "actor_name"))
    assert ("policy.locked", "rm") in actions and ("policy.unlocked", "rm") in actions


@pytestmark_db
def test_a_lock_set_after_the_promote_was_queued_stops_the_push(repository, remote, developer, release_manager):
    _ready(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "late-lock")
    staging_before = remote.head("staging")
    services.promote(promotion, actor=release_manager)
    policy.lock(repository, actor=release_manager, reason="Stop the line")

    run_jobs()

    job = Job.objects.get(kind="promote", subject_id=promotion.pk)
    assert job.state == JobState.FAILED and job.reason == JobReason.REFUSED and "locked" in job.message
    assert remote.head("staging") == staging_before
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.FAILED


@pytestmark_db
def test_a_freeze_window_covering_now_refuses_promotions_and_releases(repository, remote, developer, release_manager):
    _ready(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "frozen")
    services.promote(promotion, actor=release_manager)
    run_jobs()
    _freeze_now(repository, release_manager)

    assert guard.freeze_now(repository) is not None
    other = passed_promotion(repository, remote, developer, "frozen-too")
    with pytest.raises(services.Refused, match="freeze window"):
        services.promote(other, actor=release_manager)
    repository.refresh_from_db()
    with pytest.raises(services.Refused, match="freeze window"):
        services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")


@pytestmark_db
def test_a_freeze_that_starts_after_a_release_was_queued_stops_its_push(repository, remote, developer, release_manager):
    _ready(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "before-freeze")
    services.promote(promotion, actor=release_manager)
    run_jobs()
    repository.refresh_from_db()
    master_before = remote.head("master")
    release = services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")
    _freeze_now(repository, release_manager)

    run_jobs()

    job = Job.objects.get(kind="release", subject_id=release.pk)
    assert job.state == JobState.FAILED and job.reason == JobReason.REFUSED and "freeze" in job.message
    assert remote.head("master") == master_before and not remote.exists("refs/tags/v0.1.0")


@pytestmark_db
def test_a_hotfix_passes_a_freeze_only_with_a_second_release_managers_approval(
    repository, remote, developer, release_manager
):
    second = _user("rm2", Role.RELEASE_MANAGER)
    _ready(repository, developer)
    _freeze_now(repository, release_manager)
    hotfix = passed_promotion(repository, remote, developer, "urgent", kind="hotfix")
    feature = passed_promotion(repository, remote, developer, "shiny")

    with pytest.raises(services.Refused, match="Only hotfixes"):
        policy.request_exception(feature, actor=release_manager, reason="Want it")
    exception = policy.request_exception(hotfix, actor=release_manager, reason="Checkout is down")
    with pytest.raises(services.Refused, match="second release manager"):
        policy.approve_exception(exception, actor=release_manager)
    with pytest.raises(services.Refused, match="freeze window"):
        services.promote(hotfix, actor=release_manager)

    policy.approve_exception(exception, actor=second)
    services.promote(hotfix, actor=release_manager)
    run_jobs()

    hotfix.refresh_from_db()
    assert hotfix.state == PromotionState.PROMOTED and remote.head("staging") == hotfix.merge_sha
    with pytest.raises(services.Refused, match="freeze window"):
        services.promote(feature, actor=release_manager)
    approval = AuditEvent.objects.get(action="policy.exception_approved")
    assert approval.actor_name == "rm2" and approval.details["requested_by"] == "rm"
    assert approval.details["approved_by"] == "rm2"


@pytestmark_db
def test_policy_changes_are_for_release_managers_only(repository, developer):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        policy.lock(repository, actor=developer, reason="no")
    with pytest.raises(PermissionDenied):
        _freeze_now(repository, developer)


@pytestmark_db
def test_a_window_needs_a_weekday_and_a_real_time_zone(repository, release_manager):
    with pytest.raises(services.Refused, match="weekday"):
        policy.add_window(repository, actor=release_manager, weekdays=[], start=time(1), end=time(2), time_zone="UTC")
    with pytest.raises(services.Refused, match="IANA"):
        policy.add_window(
            repository, actor=release_manager, weekdays=[1], start=time(1), end=time(2), time_zone="Nowhere/City"
        )
    assert not AuditEvent.objects.filter(action__startswith="policy.").exists()


@pytestmark_db
def test_the_board_shows_the_lock_or_the_next_freeze_window(client, repository, developer, release_manager):
    client.force_login(developer)
    policy.add_window(
        repository,
        actor=release_manager,
        weekdays=[0],
        start=time(9),
        end=time(10),
        time_zone="UTC",
        reason="Monday deploys",
    )
    assert "Next freeze window" in client.get(f"/r/{repository.name}/").content.decode()
    policy.lock(repository, actor=release_manager, reason="Database migration running")
    page = client.get(f"/r/{repository.name}/").content.decode()
    assert "Promotions are locked" in page and "Database migration running" in page
    policy_page = client.get(f"/r/{repository.name}/policy/").content.decode()
    assert "Monday 09:00" in policy_page and "Lock promotions" not in policy_page  # no buttons for a developer
