"""The drift alarm (DESIGN invariant 6): master or staging moved behind Releaseboard's
back with plain git is detected, recorded, shown, and stops promotions into it until a
release manager adopts the new head or resets staging from master."""

from __future__ import annotations

import os
import subprocess

import pytest

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.policy import guard
from releaseboard.policy import service as policy
from releaseboard.policy.models import DriftAlarm, DriftState
from releaseboard.releases import services, sync
from releaseboard.releases.models import PromotionState
from tests.conftest import run_jobs
from tests.flows import landed_promotion, passed_promotion
from tests.flows import sync as sync_now
from tests.gitrepo import git

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
    assert last is not None
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


# -- every move Releaseboard did not make raises the alarm (issue 14) -----------------------


def force(remote, sha: str, branch: str) -> None:
    """`git push -f origin <sha>:<branch>` from the developer's clone, as an outsider would."""
    git("fetch", "-q", "origin", cwd=remote.work)
    git("push", "-q", "-f", "origin", f"{sha}:refs/heads/{branch}", cwd=remote.work)


def delete(remote, branch: str) -> None:
    # The remote's HEAD names master; a server that allows deleting it, as some do.
    git("--git-dir", str(remote.bare), "config", "receive.denyDeleteCurrent", "ignore")
    git("push", "-q", "origin", f":refs/heads/{branch}", cwd=remote.work)


def side_commit(remote, base: str) -> str:
    """A new commit on a line of its own, started at `base` (not pushed anywhere)."""
    git("fetch", "-q", "origin", cwd=remote.work)
    git("checkout", "-q", "--detach", base, cwd=remote.work)
    return remote.write({"side.py": "S = 1\n"}, "A line of its own")


def _released(repository, release_manager, version):
    repository.refresh_from_db()
    release = services.promote_to_master(repository, actor=release_manager, version=version, notes="")
    run_jobs()
    release.refresh_from_db()
    return release


def staging_backward(repository, remote, developer, release_manager):
    first = landed_promotion(repository, remote, developer, release_manager, "first")
    second = landed_promotion(repository, remote, developer, release_manager, "second")
    force(remote, first.merge_sha, "staging")  # back to a head Releaseboard itself pushed once
    return second.merge_sha, first.merge_sha


def staging_sideways(repository, remote, developer, release_manager):
    promotion = landed_promotion(repository, remote, developer, release_manager, "first")
    side = side_commit(remote, remote.head("master"))
    force(remote, side, "staging")
    return promotion.merge_sha, side


def master_backward(repository, remote, developer, release_manager):
    landed_promotion(repository, remote, developer, release_manager, "first")
    first = _released(repository, release_manager, "0.1.0")
    landed_promotion(repository, remote, developer, release_manager, "second")
    second = _released(repository, release_manager, "0.2.0")
    force(remote, first.sha, "master")  # back to an earlier release
    return second.sha, first.sha


def master_sideways(repository, remote, developer, release_manager):
    before = remote.head("master")
    side = side_commit(remote, before)
    force(remote, side, "master")
    return before, side


def deleted(branch):
    def move(repository, remote, developer, release_manager):
        before = remote.head(branch)
        delete(remote, branch)
        return before, ""

    return move


def recreated(branch):
    def move(repository, remote, developer, release_manager):
        before = remote.head(branch)
        delete(remote, branch)
        sync_now(repository, developer)
        alarm = DriftAlarm.objects.get(branch_name=branch, state=DriftState.OPEN)
        policy.adopt_head(alarm, actor=release_manager, reason="Deleted on purpose", found_sha="")
        git("push", "-q", "origin", f"{before}:refs/heads/{branch}", cwd=remote.work)  # and back by hand
        return "", before

    return move


@pytest.mark.parametrize(
    ("branch", "move"),
    [
        ("staging", staging_backward),
        ("staging", staging_sideways),
        ("staging", deleted("staging")),
        ("staging", recreated("staging")),
        ("master", master_backward),
        ("master", master_sideways),
        ("master", deleted("master")),
        ("master", recreated("master")),
    ],
    ids=lambda p: p if isinstance(p, str) else p.__qualname__.split(".")[0],
)
def test_every_move_releaseboard_did_not_make_raises_the_alarm(
    repository, remote, developer, release_manager, branch, move
):
    _ready(repository, developer)
    expected, found = move(repository, remote, developer, release_manager)

    sync_now(repository, developer)
    sync_now(repository, developer)

    alarm = DriftAlarm.objects.get(branch_name=branch, state=DriftState.OPEN)
    assert (alarm.expected_sha, alarm.found_sha) == (expected, found)
    event = AuditEvent.objects.filter(action="drift.detected").order_by("seq").last()
    assert event is not None
    assert (event.from_sha, event.to_sha) == (expected, found) and event.result == "violation"
    assert AuditEvent.objects.filter(action="drift.detected").count() == (1 if expected else 2)


def test_a_staging_releaseboard_creates_again_after_a_deletion_raises_no_new_alarm(
    repository, remote, developer, release_manager
):
    _ready(repository, developer)
    delete(remote, "staging")
    sync_now(repository, developer)
    assert guard.open_alarms(repository, "staging")

    services.copy_master_to_staging(repository, actor=release_manager)
    run_jobs()
    sync_now(repository, developer)

    assert remote.head("staging") == remote.head("master")
    assert not guard.open_alarms(repository)
    assert AuditEvent.objects.filter(action="drift.detected").count() == 1


# -- the alarm names who moved the ref, not everyone whose work it carries ----------------


def commit_as(remote, files: dict[str, str], message: str, author: str, committer: str) -> str:
    """Commit in the clone with a given author and committer (as after a cherry-pick)."""
    for name, text in files.items():
        (remote.work / name).write_text(text)
        git("add", "--", name, cwd=remote.work)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": f"{author.split()[-1].lower()}@example.com",
        "GIT_COMMITTER_NAME": committer,
        "GIT_COMMITTER_EMAIL": f"{committer.split()[-1].lower()}@example.com",
    }
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=remote.work, env=env, check=True)
    return git("rev-parse", "HEAD", cwd=remote.work)


def test_a_hand_push_to_master_names_only_the_commits_releaseboard_did_not_put_there(
    client, repository, remote, developer, release_manager, ops
):
    _ready(repository, developer)
    branch = services.request_branch(repository, actor=developer, kind="feature", name="three", purpose="work")
    run_jobs()
    git("fetch", "-q", "origin", cwd=remote.work)
    git("checkout", "-q", "-B", branch.name, f"origin/{branch.name}", cwd=remote.work)
    promoted_work = commit_as(remote, {"three.py": "T = 3\n"}, "Work by Dev Three", "Dev Three", "Dev Three")
    git("push", "-q", "origin", branch.name, cwd=remote.work)
    sync_now(repository, developer)
    branch.refresh_from_db()
    promotion = services.request_promotion(branch, actor=developer, title="three")
    run_jobs()
    promotion.refresh_from_db()
    services.promote(promotion, actor=release_manager)
    run_jobs()
    # An outsider takes staging, adds two commits of their own and pushes it all to master.
    git("fetch", "-q", "origin", cwd=remote.work)
    git("checkout", "-q", "-B", "hand", "origin/staging", cwd=remote.work)
    own = commit_as(remote, {"hand.py": "H = 1\n"}, "Quick fix", "Outside Pusher", "Outside Pusher")
    picked = commit_as(remote, {"picked.py": "P = 1\n"}, "Cherry-picked", "Dev Four", "Outside Pusher")
    git("push", "-q", "origin", "hand:master", cwd=remote.work)

    sync_now(repository, developer)

    alarm = DriftAlarm.objects.get(branch_name="master", state=DriftState.OPEN)
    assert [c["sha"] for c in alarm.outside_commits] == [picked, own]
    assert {c["sha"] for c in alarm.releaseboard_commits} == {promotion.merge_sha, promoted_work}
    assert alarm.authors == ["Dev Four", "Outside Pusher"]  # not Dev Three, not Releaseboard
    assert alarm.outside_commits[0]["committer"] == "Outside Pusher"
    event = AuditEvent.objects.get(action="drift.detected")
    assert event.details["authors"] == ["Dev Four <four@example.com>", "Outside Pusher <pusher@example.com>"]
    assert [(c["sha"], c["author"], c["committer"]) for c in event.details["commits"]] == [
        (picked, "Dev Four", "Outside Pusher"),
        (own, "Outside Pusher", "Outside Pusher"),
    ]
    assert set(event.details["releaseboard_commits"]) == {promotion.merge_sha, promoted_work}
    assert "2 commit(s) not put there by Releaseboard, by Dev Four" in event.message
    assert "Dev Three" not in event.message and "2 commit(s) came through" in event.message
    client.force_login(ops)
    banner = client.get("/").content.decode().split("Policy violation", 1)[1].split("</div>", 1)[0]
    assert "not put there by Releaseboard, by Dev Four, Outside Pusher; 2 came through its tested" in banner
    assert "Dev Three" not in banner
