"""Promotions whose work leaves staging: forced away by hand (a rewind), or discarded by
"Copy master to staging". Either way the promotion says so, is not released, and its
branch is back on the board, ready to be promoted again. Real remotes, real jobs."""

from __future__ import annotations

import pytest

from releaseboard.audit.models import AuditEvent
from releaseboard.policy.models import DriftAlarm, DriftState
from releaseboard.releases import selectors, services
from releaseboard.releases.models import Branch, BranchState, PromotionState
from tests.conftest import run_jobs
from tests.flows import landed_promotion
from tests.flows import sync as sync_now
from tests.gitrepo import git

pytestmark = pytest.mark.django_db(transaction=True)


def _copy_master(repository, release_manager):
    services.copy_master_to_staging(repository, actor=release_manager)
    run_jobs()
    repository.refresh_from_db()


def test_a_staging_rewound_by_hand_after_a_copy_raises_the_alarm_and_removes_the_promotion(
    client, repository, remote, developer, release_manager
):
    sync_now(repository, developer)
    landed_promotion(repository, remote, developer, release_manager, "discarded")
    _copy_master(repository, release_manager)  # staging moves back to master, by Releaseboard
    vanished = landed_promotion(repository, remote, developer, release_manager, "vanishes")
    master = remote.head("master")
    assert remote.head("staging") == vanished.merge_sha

    git("push", "-q", "-f", "origin", f"{master}:staging", cwd=remote.work)  # an outsider rewinds staging
    for _ in range(3):
        sync_now(repository, developer)

    alarm = DriftAlarm.objects.get(branch_name="staging", state=DriftState.OPEN)
    assert (alarm.expected_sha, alarm.found_sha) == (vanished.merge_sha, master)
    vanished.refresh_from_db()
    assert vanished.state == PromotionState.REMOVED
    assert vanished.get_state_display() == "Removed from staging outside Releaseboard"
    assert "Promote feature/vanishes again" in vanished.state_message
    assert AuditEvent.objects.filter(action="promotion.removed", object_id=vanished.pk).count() == 1
    # Not offered for release, in the preview, the notes or the board's "Waiting for release".
    preview = selectors.release_preview(repository)
    assert vanished not in preview.promotions and "vanishes" not in selectors.release_notes(preview.promotions)
    board = selectors.board(repository)
    assert vanished not in board.unreleased
    assert vanished.branch_id in {b.pk for b in board.features} and board.promotions[vanished.branch_id] == vanished
    client.force_login(developer)
    page = client.get(f"/r/{repository.name}/").content.decode()
    assert "removed its merge commit from staging outside Releaseboard" in page
    # The branch is active again and can be promoted anew.
    branch = Branch.objects.get(pk=vanished.branch_id)
    assert branch.state == BranchState.ACTIVE
    again = services.request_promotion(branch, actor=developer, title="vanishes, again")
    run_jobs()
    again.refresh_from_db()
    assert again.state == PromotionState.OPEN and again.merge_sha
    # Into staging only once a release manager has reviewed the rewind; nobody's commits to name.
    with pytest.raises(services.Refused, match=r"staging was changed outside Releaseboard \(.* no new commits\)"):
        services.promote(again, actor=release_manager)


def test_copy_master_to_staging_puts_the_discarded_promotions_branches_back_on_the_board(
    repository, remote, developer, release_manager
):
    sync_now(repository, developer)
    first = landed_promotion(repository, remote, developer, release_manager, "first")
    second = landed_promotion(repository, remote, developer, release_manager, "second")
    assert Branch.objects.get(pk=first.branch_id).state == BranchState.PROMOTED

    _copy_master(repository, release_manager)

    board = selectors.board(repository)
    for promotion in (first, second):
        promotion.refresh_from_db()
        branch = Branch.objects.get(pk=promotion.branch_id)
        assert promotion.state == PromotionState.DISCARDED
        assert branch.state == BranchState.ACTIVE and branch in board.features
    again = services.request_promotion(Branch.objects.get(pk=first.branch_id), actor=developer, title="first again")
    run_jobs()
    again.refresh_from_db()
    services.promote(again, actor=release_manager)
    run_jobs()
    again.refresh_from_db()
    assert again.state == PromotionState.PROMOTED and remote.head("staging") == again.merge_sha


def test_copying_master_over_a_staging_forced_back_to_master_still_starts_a_new_cycle(
    repository, remote, developer, release_manager
):
    sync_now(repository, developer)
    promotion = landed_promotion(repository, remote, developer, release_manager, "forced-out")
    git("push", "-q", "-f", "origin", f"{remote.head('master')}:staging", cwd=remote.work)
    sync_now(repository, developer)
    assert DriftAlarm.objects.filter(state=DriftState.OPEN).exists()

    _copy_master(repository, release_manager)  # staging already equals master: nothing to push
    sync_now(repository, developer)

    assert DriftAlarm.objects.get().state == DriftState.RESET
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.REMOVED
    assert Branch.objects.get(pk=promotion.branch_id).state == BranchState.ACTIVE
