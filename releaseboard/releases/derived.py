"""What follows from the heads of master and staging: the commits staging has over master
(the release preview), promotions whose merge commit is no longer on staging, the test
of a new staging head, and the branch facts and radar, brought up to date by the very
job that moved a head, so that no page waits for the next sync.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from releaseboard import branching, vcs
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs.execution import JobContext
from releaseboard.jobs.models import Job, JobState
from releaseboard.releases import hooks, intelligence, moves, selectors, services
from releaseboard.releases.models import Branch, BranchState, Promotion, PromotionState, Repository, TestRun

STAGING_AHEAD_LIMIT = 200


@dataclass
class StagingSummary:
    ahead: list[dict[str, Any]] = field(default_factory=list)  # staging's commits over master, newest first
    master_in_staging: bool | None = None
    key: str = ""  # the master and staging heads it was computed for (summary_key)

    def has(self, sha: str) -> bool:
        """Whether `sha` is listed among staging's commits over master: then it is on staging.
        (False says nothing: the list is capped, and a commit on master is not listed.)"""
        return any(c["sha"] == sha for c in self.ahead)


def summary_key(master: str | None, staging: str | None) -> str:
    """A digest of the two heads (fits the column whatever the length of the object names)."""
    return hashlib.sha256(f"{master}..{staging}".encode()).hexdigest() if master and staging else ""


def stored_summary(repository: Repository, master: str | None, staging: str | None) -> StagingSummary | None:
    """The summary stored on the repository row if it was computed for these heads (the
    three fields are written together and read together, so they always agree)."""
    key = summary_key(master, staging)
    if key and repository.summary_key == key:
        return StagingSummary(list(repository.staging_ahead), repository.master_in_staging, key)
    return None


def staging_summary(
    mirror: vcs.Mirror,
    repository: Repository,
    heads: dict[str, str],
    *,
    master_in_staging: bool | None = None,
) -> StagingSummary:
    """The commits staging has over master, and whether master is in staging: the stored
    summary when it is of these heads (no git), else one `git log` (and one merge-base
    unless `master_in_staging` is already known, or master is staging)."""
    master, staging = heads.get(repository.master_branch), heads.get(repository.staging_branch)
    if not (master and staging):
        return StagingSummary()
    stored = stored_summary(repository, master, staging)
    if stored is not None:
        return stored
    key = summary_key(master, staging)
    if master == staging:
        return StagingSummary([], True, key)
    commits = mirror.commits_between(master, staging, limit=STAGING_AHEAD_LIMIT)
    ahead = [
        {
            "sha": commit.sha,
            "subject": commit.subject,
            "author": commit.author_name,
            "promotion": (commit.trailers.get("Releaseboard-Promotion") or [""])[0],
        }
        for commit in commits
    ]
    if master_in_staging is None:
        master_in_staging = mirror.is_ancestor(master, staging)
    return StagingSummary(ahead, master_in_staging, key)


def summary_fields(summary: StagingSummary) -> dict[str, Any]:
    """The repository row's fields for `summary` (for an UPDATE that writes more)."""
    return {"staging_ahead": summary.ahead, "master_in_staging": summary.master_in_staging, "summary_key": summary.key}


def save_summary(repository: Repository, summary: StagingSummary, **also: Any) -> None:
    """Store `summary` on the repository row (and the fields in `also`, in the same UPDATE)."""
    fields = {**summary_fields(summary), **also}
    Repository.objects.filter(pk=repository.pk).update(**fields)
    for name, value in fields.items():
        setattr(repository, name, value)


REMOVED_MESSAGE = (
    "{staging} moved outside Releaseboard and no longer contains this promotion's merge commit {sha}, so it "
    "will not be released. Promote {branch} again (or ask a release manager to adopt the new {staging})."
)


def remove_vanished(mirror: vcs.Mirror, repository: Repository, staging: str, summary: StagingSummary) -> list[int]:
    """Mark the landed, unreleased promotions whose merge commit is gone from `staging`
    (a forced push took it away): they will not be released, and their branches are
    active again, so they can be promoted again. Inside the job's transaction.

    Skipped while a Releaseboard job is moving staging: a copy of master discards them itself.
    """
    on_staging = {c["sha"] for c in summary.ahead}
    unreleased = list(selectors.unreleased_promotions(repository))
    # Nothing to check (every one is among staging's listed commits): no more queries.
    if all((p.promoted_sha or p.merge_sha) in on_staging or not (p.promoted_sha or p.merge_sha) for p in unreleased):
        return []
    if moves.pending(repository, repository.staging_branch):
        return []
    removed = []
    for promotion in unreleased:
        sha = promotion.promoted_sha or promotion.merge_sha
        if not sha or sha in on_staging:
            continue
        # Not among staging's commits over master: it may still be on staging (on master
        # too, or beyond the listed ones); one git call settles it, only in this rare case.
        if mirror.has_commit(sha) and mirror.is_ancestor(sha, staging):
            continue
        message = REMOVED_MESSAGE.format(staging=repository.staging_branch, sha=sha[:10], branch=promotion.branch.name)
        changed = Promotion.objects.filter(pk=promotion.pk, state=PromotionState.PROMOTED).update(
            state=PromotionState.REMOVED, state_message=message
        )
        if not changed:
            continue
        Branch.objects.filter(pk=promotion.branch_id, state=BranchState.PROMOTED).update(
            state=BranchState.ACTIVE, updated_at=timezone.now()
        )
        audit_record(
            "promotion.removed",
            actor=None,
            repository=repository,
            obj=promotion,
            from_sha=sha,
            to_sha=staging,
            result="removed",
            message=message,
        )
        removed.append(promotion.pk)
    return removed


def record_copy(repository: Repository, actor: Any, before: str, master: str, *, reconciled: bool = False) -> None:
    """Record that staging was copied from master (`before` was its head): its unreleased
    promotions are discarded and their branches active again, to be promoted anew; the
    audit event resets a staging drift alarm. Inside the caller's transaction. Called by
    the copy job, or by a sync that finds the copy landed first (`reconciled`)."""
    promotions = list(selectors.unreleased_promotions(repository))
    discarded = [p.pk for p in promotions]
    Promotion.objects.filter(pk__in=discarded).update(state=PromotionState.DISCARDED)
    Branch.objects.filter(pk__in=[p.branch_id for p in promotions], state=BranchState.PROMOTED).update(
        state=BranchState.ACTIVE, updated_at=timezone.now()
    )
    Branch.objects.update_or_create(
        repository=repository,
        name=repository.staging_branch,
        defaults={"kind": branching.BranchKind.STAGING.value, "head_sha": master, "state": BranchState.ACTIVE},
    )
    moves.settle(repository, repository.staging_branch, master)
    audit_record(
        "staging.copied",
        actor=actor,
        repository=repository,
        obj=repository,
        from_sha=before,
        to_sha=master,
        details={"discarded_promotions": discarded, **({"reconciled": True} if reconciled else {})},
    )


def ensure_staging_tested(repository: Repository, staging: str) -> None:
    """Queue a test of a new staging head. A merge commit Releaseboard pushed was already
    tested as that exact commit and is skipped; so is a head whose test is queued."""
    if TestRun.objects.filter(repository=repository, commit_sha=staging).exists():
        return
    if Job.objects.filter(scope_id=repository.pk, kind="test_staging", state__in=JobState.active()).exists():
        return
    services.staging_test_job(repository, None)


class MoveAhead:
    """What a job starts on the staging head it is about to push, before the push: the
    branch facts and (hooks.staging_moving) the radar's merges, each in a thread of its own
    (git only), so that they run while it pushes. after_move takes what it can use; the
    job waits for the rest once it is done with the move (a with block)."""

    def __init__(self, facts: intelligence.FactsAhead | None = None, observed: list[Any] | None = None) -> None:
        self.facts, self.observed = facts, observed or []

    def __enter__(self) -> MoveAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        for started in [self.facts, *self.observed]:
            wait = getattr(started, "wait", None)
            if callable(wait):
                wait()


def move_ahead(
    ctx: JobContext, repository: Repository, mirror: vcs.Mirror, heads: dict[str, str], settled: dict[int, str]
) -> MoveAhead:
    """Start the work after_move will do for `heads` (staging about to move there), from
    the branch rows as the job will have left them (`settled`: a state by branch id). It
    only helps: whatever fails here is logged, and after_move does the work itself."""
    ahead = MoveAhead()
    try:
        ahead.facts = intelligence.FactsAhead(repository, mirror, heads, settled)
        ahead.observed = hooks.staging_moving.notify(repository, mirror, heads, settled)
    except Exception as exc:  # a head start, never a reason to fail the job
        ctx.log(f"Could not start the work after the push ahead of it ({exc}); it is done after the push.\n")
    return ahead


def after_move(
    ctx: JobContext,
    repository: Repository,
    mirror: vcs.Mirror,
    heads: dict[str, str],
    *,
    master_in_staging: bool | None = None,
    ahead: MoveAhead | None = None,
) -> None:
    """The job just moved staging to its head in `heads`: bring what depends on it up to
    date before the job ends, with the mirror the job already has (no fetch): the release
    preview (staging's commits over master), every open branch's behind/ahead, missing
    hotfixes and dependencies, and the radar against staging (only the pairs with the new
    head are merged, in one git process). (A release stores its preview itself.)
    `master_in_staging` is passed when the caller knows it (staging moved to a commit
    that has the previous head, which had master): one git process fewer. `ahead`: what
    the job started before its push (move_ahead); what fits these heads is used.
    """
    ahead = ahead or MoveAhead()
    summary = staging_summary(mirror, repository, heads, master_in_staging=master_in_staging)
    with ctx.atomic():
        save_summary(repository, summary)
        staging = heads.get(repository.staging_branch)
        if staging:
            ensure_staging_tested(repository, staging)
    # The radar's merges start (or are taken from those started before the push).
    after = hooks.heads_recorded.notify(repository, mirror, ctx.log, ahead=ahead.observed)
    try:
        intelligence.record(ctx, repository, mirror, heads, ahead.facts)
    finally:
        hooks.finish(after)
