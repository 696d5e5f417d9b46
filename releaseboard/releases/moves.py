"""The ledger of Releaseboard's own moves of master and staging (DESIGN invariant 6).

A job that pushes to master or staging writes the move it is about to make (old and new
head) before the push, and settles it once the new head is recorded. The drift check
accepts exactly these pending moves as Releaseboard's: a head that merely equals an old
promotion's merge commit, a past release or a past copy of master is no proof, because
a forced push can put any old commit back.
"""

from __future__ import annotations

from django.utils import timezone

from releaseboard.jobs.models import Job
from releaseboard.releases.models import Branch, BranchState, ExpectedMove, MoveState, Repository


def expect(repository: Repository, name: str, old: str, new: str, job: Job | None) -> ExpectedMove:
    """Record that `job` is about to move `name` from `old` ("" when it does not exist) to
    `new`. Written inside the job's lease-checked transaction, before the push."""
    return ExpectedMove.objects.create(repository=repository, branch_name=name, from_sha=old, to_sha=new, job=job)


def pending_move(repository: Repository, name: str, old: str, new: str) -> ExpectedMove | None:
    """The move of `name` from `old` to `new` that a Releaseboard job is making right now, if any."""
    return (
        ExpectedMove.objects.filter(
            repository=repository, branch_name=name, from_sha=old, to_sha=new, state=MoveState.PENDING
        )
        .select_related("job")
        .first()
    )


def explains(repository: Repository, name: str, old: str, new: str) -> bool:
    """Whether a Releaseboard job is moving `name` from `old` to `new` right now."""
    return pending_move(repository, name, old, new) is not None


def still_pending(move: ExpectedMove) -> bool:
    """Whether nobody has recorded `move` yet (a sync may record it before its own job does)."""
    return ExpectedMove.objects.filter(pk=move.pk, state=MoveState.PENDING).exists()


def settle(repository: Repository, name: str, head: str) -> None:
    """`name` is recorded at `head` ("" when deleted): the pending move to it landed, and any
    other pending move of it can no longer land as written (its compare-and-swap expects
    a head that is gone), so it will never explain anything again."""
    pending = ExpectedMove.objects.filter(repository=repository, branch_name=name, state=MoveState.PENDING)
    now = timezone.now()
    if head:
        pending.filter(to_sha=head).update(state=MoveState.LANDED, settled_at=now)
    pending.exclude(to_sha=head).update(state=MoveState.DROPPED, settled_at=now)


def drop(move: ExpectedMove) -> None:
    """The remote refused the push: the move did not happen."""
    ExpectedMove.objects.filter(pk=move.pk, state=MoveState.PENDING).update(
        state=MoveState.DROPPED, settled_at=timezone.now()
    )


def pending(repository: Repository, name: str) -> bool:
    """Whether a Releaseboard job may be moving `name` now."""
    return ExpectedMove.objects.filter(repository=repository, branch_name=name, state=MoveState.PENDING).exists()


def recorded_heads(repository: Repository) -> dict[str, str]:
    """master and staging as Releaseboard last recorded them: "" for one seen deleted, no
    entry for one never seen. Read before the fetch, so that a head another job records
    meanwhile is compared with a remote at least as new as it (no false alarm from a slow
    fetch), and record_heads writes a head only if the row still holds what was read."""
    names = (repository.master_branch, repository.staging_branch)
    rows = Branch.objects.filter(repository=repository, name__in=names).exclude(state=BranchState.REQUESTED)
    return {
        name: (sha if state == BranchState.ACTIVE else "")
        for name, sha, state in rows.values_list("name", "head_sha", "state")
    }
