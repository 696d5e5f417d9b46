"""Repositories, the board, branches, promotions, staging and releases.

Each endpoint is as thin as a view: check (releaseboard/api/access.py), call the same
service or selector the page calls, serialise.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from ninja import Router, Status

from releaseboard.radar import selectors as radar
from releaseboard.releases import selectors, services
from releaseboard.releases.models import Branch, Promotion, Repository
from releaseboard.roles import Perm
from releaseboard.tokens.models import Scope

from . import access, schemas
from .access import branch_for, idempotency_key, promotion_for, repository_for
from .problems import Problem

router = Router(tags=["repositories"])


def _latest_job(subject_type: str, subject_id: int) -> dict[str, Any] | None:
    job = selectors.jobs_for(subject_type, subject_id).select_related("created_by").first()
    return schemas.job_out(job) if job is not None else None


def _head(repository: Repository, branch: Branch | None, test: Any) -> dict[str, Any] | None:
    if branch is None:
        return None
    return {"name": branch.name, "sha": branch.head_sha, "test": test.result if test is not None else None}


@router.get("/repos", response=list[schemas.RepositoryOut], summary="Repositories")
def repo_list(request: HttpRequest) -> list[dict[str, Any]]:
    access.require_perm(request, Perm.VIEW, Scope.READ)
    return [schemas.repository_out(r) for r in Repository.objects.order_by("name")]


@router.get("/repos/{repo}", response=schemas.RepositoryOut, summary="One repository")
def repo_detail(request: HttpRequest, repo: str) -> dict[str, Any]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    return schemas.repository_out(repository)


@router.get("/repos/{repo}/board", response=schemas.BoardOut, summary="The board")
def board(request: HttpRequest, repo: str) -> dict[str, Any]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    data = selectors.board(repository)
    matrix = radar.matrix(repository)
    cells = [
        {"branch": c.branch.name, "other": c.other.name, "state": c.state, "conflicts": c.conflicts}
        for row in matrix.rows
        for c in ([row.staging] if row.staging else []) + row.cells
    ]
    return {
        "repository": schemas.repository_out(repository),
        "master": _head(repository, data.master, data.master_test),
        "staging": _head(repository, data.staging, data.staging_test),
        "features": [schemas.branch_out(b) for b in data.features],
        "hotfixes": [schemas.branch_out(b) for b in data.hotfixes],
        "promotions": [schemas.promotion_out(p) for p in data.promotions.values()],
        "unreleased": [schemas.promotion_out(p) for p in data.unreleased],
        "active_jobs": [schemas.job_out(j) for j in data.active_jobs],
        "radar": {
            "conflicting_pairs": matrix.conflicting_pairs,
            "pending_pairs": matrix.pending_pairs,
            "cells": cells,
        },
    }


@router.post("/repos/{repo}/refresh", response={202: schemas.JobOut}, summary="Fetch the remote now")
def repo_refresh(request: HttpRequest, repo: str) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.REFRESH, Scope.BRANCHES)
    job = services.refresh(repository, actor=user, idempotency_key=idempotency_key(request, f"refresh:{repo}"))
    return Status(202, schemas.job_out(job))


@router.get("/repos/{repo}/branches", response=list[schemas.BranchOut], summary="Branches (filter by ?name=)")
def branch_list(request: HttpRequest, repo: str, name: str = "") -> list[dict[str, Any]]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    branches = Branch.objects.filter(repository=repository).select_related("requested_by").order_by("name")
    if name:
        branches = branches.filter(name=name)
    return [schemas.branch_out(b) for b in branches]


@router.post("/repos/{repo}/branches", response={201: schemas.BranchStartedOut}, summary="Request a branch")
def branch_request(request: HttpRequest, repo: str, body: schemas.BranchRequestIn) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.REQUEST_BRANCH, Scope.BRANCHES)
    branch = services.request_branch(
        repository,
        actor=user,
        kind=body.kind,
        name=body.name,
        purpose=body.purpose,
        ticket_url=body.ticket_url,
        idempotency_key=idempotency_key(request, f"branch:{repo}"),
    )
    return Status(201, {"branch": schemas.branch_out(branch), "job": _latest_job("branch", branch.pk)})


@router.get("/repos/{repo}/branches/{branch_id}", response=schemas.BranchOut, summary="One branch")
def branch_detail(request: HttpRequest, repo: str, branch_id: int) -> dict[str, Any]:
    _, branch = branch_for(request, repo, branch_id, Perm.VIEW, Scope.READ)
    return schemas.branch_out(branch)


@router.post("/repos/{repo}/branches/{branch_id}/update", response={202: schemas.JobOut}, summary="Update from staging")
def branch_update(request: HttpRequest, repo: str, branch_id: int) -> Status[dict[str, Any]]:
    user, branch = branch_for(request, repo, branch_id, Perm.VIEW, Scope.BRANCHES)
    job = services.update_branch(branch, actor=user, idempotency_key=idempotency_key(request, f"update:{branch.pk}"))
    return Status(202, schemas.job_out(job))


@router.post("/repos/{repo}/promotions", response={201: schemas.PromotionStartedOut}, summary="Request promotion")
def promotion_request(request: HttpRequest, repo: str, body: schemas.PromotionRequestIn) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.REQUEST_PROMOTION, Scope.BRANCHES)
    branch = Branch.objects.filter(repository=repository, name=body.branch).first()
    if branch is None:
        raise Problem(
            422,
            "validation_failed",
            f"{repository.name} has no branch named '{body.branch}'; 'rb board {repository.name}' lists them.",
            errors=[{"field": "branch", "message": "no such branch"}],
        )
    title = body.title.strip()
    if not title:  # as the page proposes: the first line of the branch's purpose
        title = (branch.purpose.strip().splitlines() or [branch.short_name])[0][:200]
    promotion = services.request_promotion(
        branch,
        actor=user,
        title=title,
        description=body.description or branch.purpose,
        idempotency_key=idempotency_key(request, f"promotion:{repo}"),
    )
    return Status(201, {"promotion": schemas.promotion_out(promotion), "job": _latest_job("promotion", promotion.pk)})


@router.get("/repos/{repo}/promotions", response=list[schemas.PromotionOut], summary="Promotions, newest first")
def promotion_list(request: HttpRequest, repo: str, state: str = "") -> list[dict[str, Any]]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    promotions = Promotion.objects.filter(repository=repository).select_related("branch", "requested_by", "promoted_by")
    if state:
        promotions = promotions.filter(state=state)
    return [schemas.promotion_out(p) for p in promotions.order_by("-id")[:200]]


@router.get("/repos/{repo}/promotions/{promotion_id}", response=schemas.PromotionStartedOut, summary="One promotion")
def promotion_detail(request: HttpRequest, repo: str, promotion_id: int) -> dict[str, Any]:
    _, promotion = promotion_for(request, repo, promotion_id, Perm.VIEW, Scope.READ)
    return {"promotion": schemas.promotion_out(promotion), "job": _latest_job("promotion", promotion.pk)}


@router.post("/repos/{repo}/promotions/{promotion_id}/retest", response={202: schemas.JobOut}, summary="Test again")
def promotion_retest(request: HttpRequest, repo: str, promotion_id: int) -> Status[dict[str, Any]]:
    user, promotion = promotion_for(request, repo, promotion_id, Perm.RUN_TESTS, Scope.BRANCHES)
    key = idempotency_key(request, f"retest:{promotion.pk}")
    return Status(202, schemas.job_out(services.retest_promotion(promotion, actor=user, idempotency_key=key)))


@router.post(
    "/repos/{repo}/promotions/{promotion_id}/promote", response={202: schemas.JobOut}, summary="Promote to staging"
)
def promotion_promote(request: HttpRequest, repo: str, promotion_id: int) -> Status[dict[str, Any]]:
    user, promotion = promotion_for(request, repo, promotion_id, Perm.PROMOTE, Scope.PROMOTE)
    key = idempotency_key(request, f"promote:{promotion.pk}")
    return Status(202, schemas.job_out(services.promote(promotion, actor=user, idempotency_key=key)))


@router.post("/repos/{repo}/staging/test", response={202: schemas.JobOut}, summary="Test staging")
def staging_test(request: HttpRequest, repo: str) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.RUN_TESTS, Scope.BRANCHES)
    key = idempotency_key(request, f"test-staging:{repo}")
    return Status(202, schemas.job_out(services.test_staging(repository, actor=user, idempotency_key=key)))


@router.post("/repos/{repo}/staging/copy-master", response={202: schemas.JobOut}, summary="Copy master to staging")
def staging_copy_master(request: HttpRequest, repo: str) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.COPY_MASTER, Scope.PROMOTE)
    key = idempotency_key(request, f"copy-master:{repo}")
    return Status(202, schemas.job_out(services.copy_master_to_staging(repository, actor=user, idempotency_key=key)))


@router.get("/repos/{repo}/release-preview", response=schemas.ReleasePreviewOut, summary="What a release would ship")
def release_preview(request: HttpRequest, repo: str) -> dict[str, Any]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    preview = selectors.release_preview(repository)
    return {
        "master_sha": preview.master_sha,
        "staging_sha": preview.staging_sha,
        "current_version": str(preview.current_version),
        "proposed_version": str(preview.proposed_version),
        "promotions": [schemas.promotion_out(p) for p in preview.promotions],
        "commits": preview.commits,
        "test": preview.test.result if preview.test is not None else None,
        "refusal": preview.refusal,
        "notes": selectors.release_notes(preview.promotions),
    }


@router.get("/repos/{repo}/releases", response=list[schemas.ReleaseOut], summary="Releases, newest first")
def release_list(request: HttpRequest, repo: str) -> list[dict[str, Any]]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    return [schemas.release_out(r) for r in repository.releases.select_related("released_by").order_by("-id")[:200]]


@router.get("/repos/{repo}/releases/{release_id}", response=schemas.ReleaseStartedOut, summary="One release")
def release_detail(request: HttpRequest, repo: str, release_id: int) -> dict[str, Any]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    release = repository.releases.select_related("released_by").filter(pk=release_id).first()
    if release is None:
        raise Http404(f"{repository.name} has no release #{release_id}.")
    return {"release": schemas.release_out(release), "job": _latest_job("release", release.pk)}


@router.post("/repos/{repo}/releases", response={201: schemas.ReleaseStartedOut}, summary="Promote to master")
def release_create(request: HttpRequest, repo: str, body: schemas.ReleaseIn) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.PROMOTE, Scope.PROMOTE)
    preview = selectors.release_preview(repository)
    release = services.promote_to_master(
        repository,
        actor=user,
        version=body.version.strip() or str(preview.proposed_version),
        notes=body.notes if body.notes is not None else selectors.release_notes(preview.promotions),
        idempotency_key=idempotency_key(request, f"release:{repo}"),
    )
    return Status(201, {"release": schemas.release_out(release), "job": _latest_job("release", release.pk)})
