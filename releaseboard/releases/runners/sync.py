"""Fetch the remote and record what it shows: done before every job (the remote is the truth)."""

from __future__ import annotations

from typing import NamedTuple

from django.utils import timezone

from releaseboard import branching, vcs
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs.execution import JobContext
from releaseboard.releases import derived, hooks, intelligence, moves
from releaseboard.releases.models import (
    Branch,
    BranchState,
    ExpectedMove,
    Promotion,
    PromotionState,
    Repository,
    lock_branch_values,
)
from releaseboard.releases.runners.candidates import prune_candidates
from releaseboard.releases.runners.common import git_step, mirror_for
from releaseboard.releases.runners.outcomes import record_promoted


def refresh(ctx: JobContext, repository: Repository) -> tuple[vcs.Mirror, dict[str, str]]:
    """Fetch the remote and record its heads: done before every job (the remote is the truth)."""
    ctx.section(f"Fetch {repository.remote_url}")
    mirror = mirror_for(repository, ctx)
    # Read before the fetch: a head recorded after this was seen by a fetch at least as new.
    recorded = moves.recorded_heads(repository)
    git_step(ctx, "fetch from the remote", mirror.fetch)
    heads = mirror.heads()
    ctx.checkpoint("after_fetch")
    record_heads(ctx, repository, mirror, heads, recorded)
    return mirror, heads


def record_heads(
    ctx: JobContext,
    repository: Repository,
    mirror: vcs.Mirror,
    heads: dict[str, str],
    recorded: dict[str, str] | None = None,
) -> None:
    """Record the remote's heads as Releaseboard's branch rows. `recorded` is master and
    staging as read before the fetch (moves.recorded_heads). What follows from new heads
    is done by the apps at the check points (drift alarms, the radar) and by `derived`
    (staging's summary, promotions that landed or vanished, branch facts)."""
    if recorded is None:
        recorded = moves.recorded_heads(repository)
    summary = derived.staging_summary(mirror, repository, heads)
    latest = branching.latest_version(mirror.tags())
    # Invariant 6: what the fetch shows is compared with the heads recorded so far, before
    # they are updated (policy raises drift alarms from it, inside the transaction below).
    observed = hooks.heads_fetched.notify(repository, mirror, heads, recorded)
    copy = _landed_copy(repository, recorded, heads)
    with ctx.atomic():
        # What the heads are compared with (values, not model instances: one row per branch).
        known = {
            name: KnownBranch(pk, state, head)
            for pk, name, state, head in lock_branch_values(repository, ("name", "state", "head_sha"))
        }
        stale = _stale_protected(repository, known, recorded)
        for write in observed:
            write(stale)
        changes = _write_branch_rows(repository, known, heads, stale)
        Repository.objects.filter(pk=repository.pk).update(
            synced_at=timezone.now(),
            sync_error="",
            latest_version=str(latest),
            **({} if stale else derived.summary_fields(summary)),
        )
        repository.refresh_from_db()
        _settle_staging(repository, mirror, heads, stale, copy, summary)
        if any(changes.values()):
            audit_record(
                "repository.synced",
                actor=None,
                repository=repository,
                obj=repository,
                details={k: v for k, v in changes.items() if v},
            )
    # The radar's merges run while the branch facts are computed (each its own git).
    after = hooks.heads_recorded.notify(repository, mirror, ctx.log)
    try:
        intelligence.record(ctx, repository, mirror, heads)
        for key, values in changes.items():
            for value in values:
                ctx.log(f"{key}: {value}\n")
    finally:
        hooks.finish(after)


class KnownBranch(NamedTuple):
    """A branch row as record_heads locked it."""

    pk: int
    state: str
    head_sha: str


def _stale_protected(repository: Repository, known: dict[str, KnownBranch], recorded: dict[str, str]) -> set[str]:
    """Master or staging as another job recorded them since this job read them: that job
    saw a remote at least as new as this fetch, so this job neither reports nor writes
    them (compare-and-swap on the recorded heads: no alarm from a stale view)."""
    protected = (repository.master_branch, repository.staging_branch)
    now = {
        n: (b.head_sha if b.state == BranchState.ACTIVE else "")
        for n, b in known.items()
        if n in protected and b.state != BranchState.REQUESTED
    }
    return {n for n in protected if now.get(n) != recorded.get(n)}


def _write_branch_rows(
    repository: Repository, known: dict[str, KnownBranch], heads: dict[str, str], stale: set[str]
) -> dict[str, list[str]]:
    """New, moved and deleted branches, as the remote shows them; what changed, by kind."""
    names = repository.names
    protected = (names.master, names.staging)
    changes: dict[str, list[str]] = {"new": [], "moved": [], "gone": []}
    for name, sha in heads.items():
        kind = branching.classify(names, name)
        if kind is None or name in stale:
            continue
        branch = known.get(name)
        if branch is None:
            Branch.objects.create(repository=repository, name=name, kind=kind.value, head_sha=sha)
            changes["new"].append(f"{name} {sha[:10]}")
        elif branch.state == BranchState.REQUESTED:
            continue  # its create_branch job settles it
        elif branch.head_sha != sha or branch.state in (BranchState.GONE, BranchState.FAILED):
            changes["moved"].append(f"{name} {branch.head_sha[:10]}..{sha[:10]}")
            # A promoted branch that gets new commits is in play again.
            again = branch.state in (BranchState.GONE, BranchState.FAILED, BranchState.PROMOTED)
            Branch.objects.filter(pk=branch.pk).update(
                head_sha=sha, state=BranchState.ACTIVE if again else branch.state, updated_at=timezone.now()
            )
        else:
            continue
        if name in protected:
            moves.settle(repository, name, sha)
    for name, branch in known.items():
        if name not in heads and name not in stale and branch.state in (BranchState.ACTIVE, BranchState.PROMOTED):
            Branch.objects.filter(pk=branch.pk).update(state=BranchState.GONE, updated_at=timezone.now())
            changes["gone"].append(name)
            if name in protected:
                moves.settle(repository, name, "")
    return changes


def _settle_staging(
    repository: Repository,
    mirror: vcs.Mirror,
    heads: dict[str, str],
    stale: set[str],
    copy: ExpectedMove | None,
    summary: derived.StagingSummary,
) -> None:
    """What staging's new head means for promotions: a copy of master that landed, merge
    commits that landed (or vanished), and a test of the head if it has none."""
    name = repository.staging_branch
    staging = heads.get(name)
    if copy is not None and name not in stale:
        # A copy of master landed and its job has not recorded it (still running, or
        # died after the push): record it as that job would, not as a removal.
        derived.record_copy(
            repository, copy.job.created_by if copy.job else None, copy.from_sha, copy.to_sha, reconciled=True
        )
    if staging and name not in stale:
        _reconcile_promotions(mirror, repository, staging, summary)
        derived.remove_vanished(mirror, repository, staging, summary)
    if staging:
        derived.ensure_staging_tested(repository, staging)


def _landed_copy(repository: Repository, recorded: dict[str, str], heads: dict[str, str]) -> ExpectedMove | None:
    """The pending "Copy master to staging" move this fetch shows landed, if any."""
    name = repository.staging_branch
    if name not in recorded or recorded[name] == heads.get(name, ""):
        return None
    move = moves.pending_move(repository, name, recorded[name], heads.get(name, ""))
    return move if move is not None and move.job is not None and move.job.kind == "copy_master" else None


def _reconcile_promotions(
    mirror: vcs.Mirror, repository: Repository, staging: str, summary: derived.StagingSummary
) -> None:
    """Promotions whose tested merge commit is on the remote's staging have landed, even
    if the job that pushed it died before it could record so (the remote is the truth)."""
    pending = Promotion.objects.filter(
        repository=repository, state__in=[PromotionState.PROMOTING, PromotionState.FAILED]
    ).exclude(merge_sha="")
    for promotion in pending:
        if merge_on_staging(mirror, promotion, staging, summary):
            record_promoted(promotion, before=promotion.staging_sha, action="promotion.reconciled")


def merge_on_staging(
    mirror: vcs.Mirror, promotion: Promotion, staging: str, summary: derived.StagingSummary | None = None
) -> bool:
    """Whether the promotion's merge commit is in `staging`'s history. No git when the
    answer is known: staging is that commit, or one listed among staging's commits over
    master, or still the commit the merge was made on (a commit's parent never has it)."""
    merge = promotion.merge_sha
    if not merge or not staging:
        return False
    if staging == merge or (summary is not None and summary.has(merge)):
        return True
    if staging == promotion.staging_sha:
        return False
    return mirror.has_commit(merge) and mirror.is_ancestor(merge, staging)


def run_sync(ctx: JobContext) -> str:
    repository = Repository.objects.get(pk=ctx.params["repository"])
    mirror, heads = refresh(ctx, repository)
    if hooks.candidates_wanted.any(repository):
        prune_candidates(ctx, repository, mirror)
    managed = [n for n in heads if branching.classify(repository.names, n) is not None]
    return f"Refreshed {repository.name}: {len(managed)} branches."
