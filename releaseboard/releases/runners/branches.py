"""Creating a feature or hotfix branch, and updating one from staging."""

from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from releaseboard import vcs
from releaseboard.audit.models import AuditEvent
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs.execution import JobContext, JobFailed
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases.models import (
    Branch,
    BranchState,
)
from releaseboard.releases.runners.common import (
    UNKNOWN_OUTCOME,
    PushOutcomeUnknown,
    git_step,
    identity,
    push,
    settle_unknown_push,
)
from releaseboard.releases.runners.sync import refresh

# -- branches ----------------------------------------------------------------------------


def run_create_branch(ctx: JobContext) -> str:
    branch = Branch.objects.select_related("repository").get(pk=ctx.params["branch"])
    repository = branch.repository
    with ctx.hold(repository.lock_key):
        mirror, heads = refresh(ctx, repository)
        staging = heads.get(repository.staging_branch)
        if not staging:
            raise JobFailed(
                JobReason.REFUSED,
                f"{repository.staging_branch} does not exist yet. A release manager "
                "can use \u201cCopy master to staging\u201d to start a cycle; then request the branch again.",
            )
        existing = heads.get(branch.name)
        if existing and existing != staging:
            raise JobFailed(
                JobReason.BRANCH_EXISTS, f"{branch.name} already exists on the remote; request another name."
            )
        if not existing:
            ctx.section(f"Create {branch.name} at {repository.staging_branch} {staging[:10]}")
            try:
                # expected "" : created only if the name does not exist on the remote yet.
                push(ctx, mirror, [vcs.RefUpdate(f"refs/heads/{branch.name}", staging, "")])
            except vcs.PushRejected:
                raise JobFailed(
                    JobReason.BRANCH_EXISTS, f"{branch.name} appeared on the remote meanwhile; request another name."
                ) from None
            except PushOutcomeUnknown as exc:
                raise JobFailed(exc.reason, UNKNOWN_OUTCOME.format(error=exc)) from None
        with ctx.atomic():
            Branch.objects.filter(pk=branch.pk).update(
                state=BranchState.ACTIVE, head_sha=staging, base_sha=staging, updated_at=timezone.now()
            )
            audit_record("branch.created", actor=ctx.job.created_by, repository=repository, obj=branch, to_sha=staging)
    return f"Created {branch.name} at {repository.staging_branch} {staging[:10]}."


def on_create_branch_final(job: Job) -> None:
    if job.state == JobState.SUCCEEDED:
        return
    branch = Branch.objects.filter(pk=job.params.get("branch"), state=BranchState.REQUESTED).first()
    if branch is not None:
        branch.state = BranchState.FAILED
        branch.save(update_fields=["state", "updated_at"])
        audit_record(
            "branch.failed",
            actor=None,
            repository=branch.repository,
            obj=branch,
            result=job.reason,
            message=job.message,
        )


# -- updating a branch from staging --------------------------------------------------------


def update_message(branch: Branch, staging: str, actor: Any) -> str:
    requester = actor.get_username() if actor is not None else "unknown"
    staging_name = branch.repository.staging_branch
    return (
        f"Update {branch.name} from {staging_name}\n\n"
        f"Merge {staging_name} {staging[:12]} into {branch.name}, so the branch is tested with what "
        f"{staging_name} has now.\n\nRequested-by: {requester}\nReleaseboard-Update: {branch.pk}\n"
    )


def run_update_branch(ctx: JobContext) -> str:
    branch = Branch.objects.select_related("repository").get(pk=ctx.params["branch"])
    repository = branch.repository
    ref = f"refs/heads/{branch.name}"
    with ctx.hold(repository.lock_key):
        mirror, heads = refresh(ctx, repository)
        staging, head = heads.get(repository.staging_branch), heads.get(branch.name)
        if not staging:
            raise JobFailed(JobReason.REFUSED, f"{repository.staging_branch} does not exist; nothing to update from.")
        if not head:
            raise JobFailed(JobReason.REFUSED, f"{branch.name} no longer exists on the remote.")
        if mirror.is_ancestor(staging, head):
            tip = mirror.commits_between(None, head, limit=1)
            if tip and str(branch.pk) in tip[0].trailers.get("Releaseboard-Update", []):
                # An earlier attempt pushed our merge, then its worker died before recording it.
                _record_updated(ctx, branch, mirror.resolve(f"{head}^1") or "", head)
            return f"{branch.name} already has everything {repository.staging_branch} has; nothing to merge."
        ctx.section(f"Merge {repository.staging_branch} {staging[:10]} into {branch.name} {head[:10]}")
        merge = git_step(ctx, "merge", mirror.merge, head, staging)
        if not merge.clean:
            files = merge.conflicted_paths
            with ctx.atomic():
                audit_record(
                    "branch.update_conflict",
                    actor=ctx.job.created_by,
                    repository=repository,
                    obj=branch,
                    from_sha=head,
                    to_sha=staging,
                    result="conflict",
                    details={"conflicts": files},
                )
            raise JobFailed(
                JobReason.MERGE_CONFLICT,
                f"{repository.staging_branch} conflicts with {branch.name} in: {', '.join(files)}. "
                f"{branch.name} was not changed. Merge {repository.staging_branch} into it locally, "
                "resolve the conflicts and push.",
            )
        merged = mirror.commit_tree(
            merge.tree,
            [head, staging],
            update_message(branch, staging, ctx.job.created_by),
            author=identity(),
            committer=identity(),
            timestamp=int(time.time()),
        )
        ctx.section(f"Push {merged[:10]} to {branch.name} (expecting {head[:10]})")
        try:
            push(ctx, mirror, [vcs.RefUpdate(ref, merged, head)])
        except vcs.PushRejected as exc:
            raise JobFailed(
                JobReason.TARGET_MOVED,
                f"{branch.name} moved during the update ({exc}); it was not "
                "changed. Click \u201cUpdate from staging\u201d again.",
            ) from None
        except PushOutcomeUnknown as exc:
            again = "Click \u201cUpdate from staging\u201d again."
            settle_unknown_push(ctx, repository, exc, branch.name, merged, again)
        _record_updated(ctx, branch, head, merged)
    return f"{branch.name} now has {repository.staging_branch} {staging[:10]}, as {merged[:10]}."


def _record_updated(ctx: JobContext, branch: Branch, before: str, after: str) -> None:
    """Record a pushed update once: a later attempt that finds it landed calls this again."""
    with ctx.atomic():
        if AuditEvent.objects.filter(
            action="branch.updated", object_type="branch", object_id=branch.pk, to_sha=after
        ).exists():
            return
        fresh = Branch.objects.select_for_update().get(pk=branch.pk)
        # Staging is now in the branch: nothing behind, no hotfix missing, one merge commit more.
        ahead = fresh.ahead if fresh.head_sha == after else (fresh.ahead or 0) + 1
        Branch.objects.filter(pk=branch.pk).update(head_sha=after, behind=0, ahead=ahead, missing_hotfixes=[])
        audit_record(
            "branch.updated",
            actor=ctx.job.created_by,
            repository=branch.repository,
            obj=branch,
            from_sha=before,
            to_sha=after,
        )
