"""Promote to master (a tagged release) and Copy master to staging (a new cycle)."""

from __future__ import annotations

import time

from django.utils import timezone

from releaseboard import vcs
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs.execution import JobContext, JobFailed
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases import derived, hooks, moves, selectors
from releaseboard.releases.models import (
    Branch,
    Promotion,
    PromotionState,
    Release,
    ReleaseState,
    Repository,
    lock_branch_ids,
)
from releaseboard.releases.runners.common import (
    UNKNOWN_OUTCOME,
    PushOutcomeUnknown,
    apply_verdict,
    expect_move,
    identity,
    push,
    settle_unknown_push,
)
from releaseboard.releases.runners.sync import refresh

# -- master ------------------------------------------------------------------------------


def run_release(ctx: JobContext) -> str:
    release = Release.objects.select_related("repository", "released_by").get(pk=ctx.params["release"])
    repository = release.repository
    with ctx.hold(repository.lock_key):
        mirror, heads = refresh(ctx, repository)
        master = heads.get(repository.master_branch, "")
        if master == release.sha and mirror.resolve(f"refs/tags/{release.tag}") == release.sha:
            return _mark_released(ctx, release, mirror, heads)  # an earlier attempt pushed already
        if master != release.previous_master_sha:
            raise JobFailed(
                JobReason.TARGET_MOVED,
                f"{repository.master_branch} moved since the preview "
                f"({release.previous_master_sha[:10]} \u2192 {master[:10]}). Open \u201cPromote to master\u201d again.",
            )
        summary = derived.stored_summary(repository, master, release.sha)  # no git when of these heads
        if not (summary is not None and summary.master_in_staging) and not mirror.is_ancestor(master, release.sha):
            raise JobFailed(
                JobReason.REFUSED,
                f"{repository.master_branch} is not an ancestor of the staging commit, "
                "so master cannot fast-forward: someone changed master outside the release process. "
                "Copy master to staging and promote the branches again.",
            )
        if not selectors.has_passing_test(repository, release.sha):
            raise JobFailed(
                JobReason.REFUSED, f"{release.sha[:10]} has no passing test; run \u201cTest staging\u201d first."
            )
        if release.tag in mirror.tags():
            raise JobFailed(
                JobReason.REFUSED, f"Tag {release.tag} already exists; tags never move. Choose another version."
            )
        # A drift alarm, the lock, a freeze window or a red CI status since it was queued.
        apply_verdict(ctx, hooks.before_release.ask(repository, release.sha))
        tag_object = mirror.make_tag(
            release.tag,
            release.sha,
            f"Release {release.tag}\n\n{release.notes}",
            tagger=identity(),
            timestamp=release.tag_timestamp or int(time.time()),
        )
        ctx.section(
            f"Push {repository.master_branch} {master[:10]} \u2192 {release.sha[:10]} and tag {release.tag}, atomically"
        )
        move = expect_move(ctx, repository, repository.master_branch, master, release.sha)
        try:
            # One atomic push: master and its tag land together or not at all.
            push(
                ctx,
                mirror,
                [
                    vcs.RefUpdate(f"refs/heads/{repository.master_branch}", release.sha, master),
                    vcs.RefUpdate(f"refs/tags/{release.tag}", tag_object, None),
                ],
                atomic=True,
            )
        except vcs.PushRejected as exc:
            moves.drop(move)
            raise JobFailed(
                JobReason.TARGET_MOVED,
                f"The remote refused the release ({exc}); nothing was changed. "
                "Refresh and open \u201cPromote to master\u201d again.",
            ) from None
        except PushOutcomeUnknown as exc:
            again = "Open \u201cPromote to master\u201d again."
            settle_unknown_push(ctx, repository, exc, repository.master_branch, release.sha, again)
        return _mark_released(ctx, release, mirror, heads)


def _mark_released(ctx: JobContext, release: Release, mirror: vcs.Mirror, heads: dict[str, str]) -> str:
    repository = release.repository
    # Staging's commits over master when the release was previewed, if stored: those listed are in it.
    summary = derived.stored_summary(repository, release.previous_master_sha, release.sha)
    unreleased = list(selectors.unreleased_promotions(repository))
    moved = {**heads, repository.master_branch: release.sha}

    def listed(sha: str) -> bool:  # in the release, known without git
        return sha == release.sha or (summary is not None and summary.has(sha))

    # Master and the tag are on the remote now: whatever git says below (it only reads
    # the mirror), the release is recorded. The release preview after the move is stored
    # with it (no git when staging is the released commit, as it mostly is).
    try:
        landed = [
            p.pk
            for p in unreleased
            if p.promoted_sha and (listed(p.promoted_sha) or mirror.is_ancestor(p.promoted_sha, release.sha))
        ]
        after = derived.staging_summary(mirror, repository, moved)
    except vcs.GitError as exc:
        landed = [p.pk for p in unreleased if p.promoted_sha and listed(p.promoted_sha)]
        after = derived.StagingSummary()  # no key: the next sync computes the preview again
        ctx.log(
            f"The release is recorded, but the mirror could not be read after the push ({exc}). Promotions "
            "it could not place stay on the release preview; the next sync brings the preview up to date.\n"
        )
    with ctx.atomic():
        lock_branch_ids(repository)  # the lock order of jobs that write branch rows
        Release.objects.filter(pk=release.pk).update(state=ReleaseState.RELEASED, released_at=timezone.now())
        Promotion.objects.filter(pk__in=landed).update(state=PromotionState.RELEASED, release=release)
        Branch.objects.filter(repository=repository, name=repository.master_branch).update(head_sha=release.sha)
        moves.settle(repository, repository.master_branch, release.sha)
        derived.save_summary(repository, after, latest_version=release.version)
        audit_record(
            "release.released",
            actor=release.released_by,
            repository=repository,
            obj=release,
            from_sha=release.previous_master_sha,
            to_sha=release.sha,
            details={"version": release.version, "promotions": landed},
        )
    return f"Released {release.tag}: {repository.master_branch} is {release.sha[:10]}."


def on_release_final(job: Job) -> None:
    if job.state == JobState.SUCCEEDED:
        return
    release = Release.objects.filter(pk=job.params.get("release"), state=ReleaseState.PENDING).first()
    if release is not None:
        release.state = ReleaseState.FAILED
        release.state_message = job.message
        release.save(update_fields=["state", "state_message"])
        audit_record(
            "release.failed",
            actor=None,
            repository=release.repository,
            obj=release,
            result=job.reason,
            message=job.message[:1000],
        )


def run_copy_master(ctx: JobContext) -> str:
    repository = Repository.objects.get(pk=ctx.params["repository"])
    with ctx.hold(repository.lock_key):
        mirror, heads = refresh(ctx, repository)
        master = heads.get(repository.master_branch)
        if not master:
            raise JobFailed(JobReason.REFUSED, f"{repository.master_branch} does not exist on the remote.")
        staging = heads.get(repository.staging_branch, "")
        move = None
        if staging != master:
            ctx.section(f"Set {repository.staging_branch} to {repository.master_branch} {master[:10]}")
            move = expect_move(ctx, repository, repository.staging_branch, staging, master)
            try:
                push(ctx, mirror, [vcs.RefUpdate(f"refs/heads/{repository.staging_branch}", master, staging)])
            except vcs.PushRejected as exc:
                moves.drop(move)
                raise JobFailed(
                    JobReason.TARGET_MOVED,
                    f"{repository.staging_branch} moved meanwhile ({exc}); "
                    "nothing was changed. Review the new commits, then copy again.",
                ) from None
            except PushOutcomeUnknown as exc:
                raise JobFailed(exc.reason, UNKNOWN_OUTCOME.format(error=exc)) from None
        elif not (
            selectors.unreleased_promotions(repository).exists()
            or hooks.branch_held.any(repository, repository.staging_branch)
        ):
            return f"{repository.staging_branch} is already a copy of {repository.master_branch}."
        # Also when staging already equals master because someone forced it back by hand:
        # the cycle still starts anew, its promotions are discarded, a staging alarm resets.
        with ctx.atomic():
            if move is None or moves.still_pending(move):  # else a sync recorded it first
                derived.record_copy(repository, ctx.job.created_by, staging, master)
        derived.after_move(ctx, repository, mirror, {**heads, repository.staging_branch: master})
    return f"{repository.staging_branch} is now {repository.master_branch} {master[:10]}; a new cycle starts."
