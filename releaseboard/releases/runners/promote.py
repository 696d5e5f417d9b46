"""Promote to staging: push the tested merge commit with compare-and-swap, or test again."""

from __future__ import annotations

import contextlib

from django.conf import settings

from releaseboard import vcs
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs.execution import JobContext, JobFailed
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases import derived, hooks, moves, selectors, services
from releaseboard.releases.models import (
    Branch,
    BranchState,
    Promotion,
    lock_branch_ids,
)
from releaseboard.releases.runners.candidates import candidate_ref
from releaseboard.releases.runners.common import (
    PushOutcomeUnknown,
    apply_verdict,
    expect_move,
    git_step,
    identity,
    push,
    settle_unknown_push,
)
from releaseboard.releases.runners.outcomes import fail_promotion, merge_message, record_promoted
from releaseboard.releases.runners.sync import merge_on_staging, refresh

# -- promotion to staging ----------------------------------------------------------------


def run_promote(ctx: JobContext) -> str:
    promotion = Promotion.objects.select_related("branch", "repository", "requested_by", "promoted_by").get(
        pk=ctx.params["promotion"]
    )
    repository = promotion.repository
    # Required CI statuses first: a promotion waiting for them holds neither a worker nor the lease.
    apply_verdict(ctx, hooks.before_promote.ask(promotion, since=ctx.job.created_at))
    with ctx.hold(repository.lock_key):
        mirror, heads = refresh(ctx, repository)
        staging = heads.get(repository.staging_branch, "")
        summary = derived.stored_summary(repository, heads.get(repository.master_branch), staging)
        if merge_on_staging(mirror, promotion, staging, summary):
            # It landed already (an earlier attempt pushed, then its worker died).
            return _mark_promoted(ctx, promotion, promotion.staging_sha, mirror, {**heads})
        if staging != promotion.staging_sha:
            return _retest(
                ctx,
                promotion,
                f"{repository.staging_branch} moved since the test "
                f"({promotion.staging_sha[:10]} \u2192 {staging[:10]})",
            )
        if not selectors.has_passing_test(repository, promotion.merge_sha):
            raise JobFailed(JobReason.REFUSED, "The merge result has no passing test; run the tests again.")
        # The test job made the merge commit in this mirror (a file, no git), unless it ran elsewhere.
        if not (mirror.has_loose_object(promotion.merge_sha) or mirror.has_commit(promotion.merge_sha)):
            # Another worker made the merge commit (and its tree): the same inputs rebuild
            # the identical tree with merge-tree, then the identical commit.
            if not mirror.has_commit(promotion.branch_sha):
                raise JobFailed(
                    JobReason.REFUSED,
                    f"The tested commit {promotion.branch_sha[:10]} of {promotion.branch.name} is no longer on the "
                    "remote (the branch was rewritten); run the tests again.",
                )
            merged = git_step(ctx, "merge", mirror.merge, promotion.staging_sha, promotion.branch_sha)
            if not merged.clean or merged.tree != promotion.merge_tree:
                raise JobFailed(JobReason.GIT_ERROR, "Could not rebuild the tested merge commit; run the tests again.")
            rebuilt = mirror.commit_tree(
                promotion.merge_tree,
                [promotion.staging_sha, promotion.branch_sha],
                merge_message(promotion),
                author=identity(),
                committer=identity(),
                timestamp=promotion.merge_timestamp or 0,
            )
            if rebuilt != promotion.merge_sha:
                raise JobFailed(JobReason.GIT_ERROR, "Could not rebuild the tested merge commit; run the tests again.")
        # A drift alarm, the lock, a freeze window or a red CI status since it was queued.
        apply_verdict(ctx, hooks.before_promote.ask(promotion, since=ctx.job.created_at))
        ctx.section(f"Push {promotion.merge_sha[:10]} to {repository.staging_branch} (expecting {staging[:10]})")
        move = expect_move(ctx, repository, repository.staging_branch, staging, promotion.merge_sha)
        update = vcs.RefUpdate(f"refs/heads/{repository.staging_branch}", promotion.merge_sha, staging)
        moved = {**heads, repository.staging_branch: promotion.merge_sha}
        # The branch facts and the radar against the new head are computed while the push
        # runs (git only, in threads), from the branch rows as _mark_promoted leaves them.
        with derived.move_ahead(ctx, repository, mirror, moved, {promotion.branch_id: BranchState.PROMOTED}) as ahead:
            try:
                push(ctx, mirror, [update])
            except vcs.PushRejected as exc:
                moves.drop(move)
                return _retest(ctx, promotion, f"{repository.staging_branch} moved during the promotion ({exc})")
            except PushOutcomeUnknown as exc:
                again = "Click \u201cPromote to staging\u201d again."
                settle_unknown_push(ctx, repository, exc, repository.staging_branch, promotion.merge_sha, again)
            if hooks.candidates_wanted.any(repository):  # landed: CI needs the candidate ref no more
                with contextlib.suppress(vcs.GitError):  # else the next sync deletes it
                    mirror.delete_candidate(candidate_ref(promotion), promotion.merge_sha)
            return _mark_promoted(ctx, promotion, staging, mirror, moved, ahead)


def _retest(ctx: JobContext, promotion: Promotion, why: str) -> str:
    if promotion.retests >= settings.PROMOTION_MAX_RETESTS:
        raise JobFailed(
            JobReason.TARGET_MOVED,
            f"{why}, and it kept moving: tried {promotion.retests} times. "
            "Staging is unchanged by this promotion; click \u201cPromote to staging\u201d again when it is quiet.",
        )
    with ctx.atomic():
        Promotion.objects.filter(pk=promotion.pk).update(retests=promotion.retests + 1)
        audit_record(
            "promotion.retest_scheduled", actor=None, repository=promotion.repository, obj=promotion, message=why
        )
        services._test_promotion_job(promotion, ctx.job.created_by, then_promote=True)
    return f"{why}: merging and testing again before promoting."


def _mark_promoted(
    ctx: JobContext,
    promotion: Promotion,
    before: str,
    mirror: vcs.Mirror,
    heads: dict[str, str],
    ahead: derived.MoveAhead | None = None,
) -> str:
    repository = promotion.repository
    staging_head = heads[repository.staging_branch]
    # The merge commit has the staging it was made on as a parent: master, in that one, is in it too.
    previous = derived.stored_summary(repository, heads.get(repository.master_branch), promotion.staging_sha)
    known = True if staging_head == promotion.merge_sha and previous and previous.master_in_staging else None
    with ctx.atomic():
        lock_branch_ids(repository)  # the lock order of jobs that write branch rows
        Branch.objects.filter(repository=repository, name=repository.staging_branch).update(head_sha=staging_head)
        moves.settle(repository, repository.staging_branch, staging_head)
        record_promoted(promotion, before=before)
    derived.after_move(ctx, repository, mirror, heads, master_in_staging=known, ahead=ahead)
    return f"{promotion.branch.name} is on {repository.staging_branch} as {promotion.merge_sha[:10]}."


def on_promote_final(job: Job) -> None:
    if job.state != JobState.SUCCEEDED:
        fail_promotion(job)
