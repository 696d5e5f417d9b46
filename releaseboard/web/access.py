"""The first thing every view does: check the permission, then load what it acts on.

The permission is checked before the object is looked up, so a user without the role
gets the same 403 whether or not the repository exists (no probing by name).
"""

from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from releaseboard.jobs.models import Job
from releaseboard.releases.models import Branch, Promotion, Repository
from releaseboard.roles import Perm, require


def repository_for(request: HttpRequest, name: str, perm: Perm) -> Repository:
    require(request.user, perm)
    return get_object_or_404(Repository, name=name)


def branch_for(request: HttpRequest, name: str, branch_id: int, perm: Perm) -> Branch:
    repository = repository_for(request, name, perm)
    return get_object_or_404(
        Branch.objects.select_related("repository", "requested_by"), pk=branch_id, repository=repository
    )


def promotion_for(request: HttpRequest, name: str, promotion_id: int, perm: Perm) -> Promotion:
    repository = repository_for(request, name, perm)
    return get_object_or_404(
        Promotion.objects.select_related("repository", "branch", "requested_by", "promoted_by", "release"),
        pk=promotion_id,
        repository=repository,
    )


def job_for(request: HttpRequest, job_id: int, perm: Perm) -> Job:
    require(request.user, perm)
    return get_object_or_404(Job.objects.select_related("created_by", "cancel_requested_by"), pk=job_id)
