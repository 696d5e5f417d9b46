"""Tested merge commits published for external CI (refs/releaseboard/candidates/<id>)."""

from __future__ import annotations

import contextlib

from releaseboard import vcs
from releaseboard.jobs.execution import JobContext
from releaseboard.releases import hooks
from releaseboard.releases.models import (
    Promotion,
    PromotionState,
    Repository,
)
from releaseboard.releases.runners.common import git_step, remote_refs


def candidate_ref(promotion: Promotion) -> str:
    return f"refs/releaseboard/candidates/{promotion.pk}"


def publish_candidate(ctx: JobContext, repository: Repository, mirror: vcs.Mirror, promotion: Promotion) -> None:
    """Push the tested merge commit where external CI can build that exact commit, when a
    repository requires a status on it. Compare-and-swap against what the remote holds."""
    if not hooks.candidates_wanted.any(repository):
        return
    ref = candidate_ref(promotion)
    current = (remote_refs(ctx, repository) or {}).get(ref, "")
    if current == promotion.merge_sha:
        return
    ctx.section(f"Push the merge commit {promotion.merge_sha[:10]} to {ref} for external CI")
    git_step(ctx, "push the candidate", mirror.push, [vcs.RefUpdate(ref, promotion.merge_sha, current)])


def prune_candidates(ctx: JobContext, repository: Repository, mirror: vcs.Mirror) -> None:
    """Delete the candidate refs of promotions that are no longer waiting to land."""
    refs = {r: sha for r, sha in (remote_refs(ctx, repository) or {}).items() if r.startswith(CANDIDATES)}
    if not refs:
        return
    ids = {int(r.rsplit("/", 1)[1]): r for r in refs}
    waiting = set(
        Promotion.objects.filter(
            pk__in=ids, repository=repository, state__in=[PromotionState.OPEN, PromotionState.PROMOTING]
        ).values_list("pk", flat=True)
    )
    for pk, ref in sorted(ids.items()):
        if pk not in waiting:
            ctx.log(f"Delete {ref}: promotion #{pk} no longer waits to land.\n")
            with contextlib.suppress(vcs.GitError):  # moved meanwhile: the next sync looks again
                mirror.delete_candidate(ref, refs[ref])


CANDIDATES = "refs/releaseboard/candidates/"
