"""The first thing every endpoint does, as releaseboard/web/access.py does for pages:
check the token's scope, then the user's role, then load what it acts on.

Differences from the pages, for scripts: someone who may not see repositories at all
gets 404 for any repository or job id (the API does not confirm that a name exists),
and a token is held to its scopes on top of its user's roles at the time of the request.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import Http404, HttpRequest

from releaseboard.jobs.models import Job
from releaseboard.releases.models import Branch, Promotion, Repository
from releaseboard.roles import Perm, has_perm, require
from releaseboard.tokens.models import Scope

from .auth import Principal
from .problems import Problem


def actor(request: HttpRequest, scope: Scope) -> Any:
    """The user acting, after checking that a token (if one is used) has `scope`."""
    principal: Principal = request.auth  # type: ignore[attr-defined]
    token = principal.token
    if token is not None and scope.value not in token.scopes:
        raise Problem(
            403,
            "token_scope",
            f"This token lacks the '{scope.value}' scope; make a token with it under Settings → Tokens.",
        )
    return principal.user


def actor_with_any(request: HttpRequest, *scopes: Scope) -> Any:
    """As actor(), for routes that more than one scope opens (the role decides the rest)."""
    principal: Principal = request.auth  # type: ignore[attr-defined]
    token = principal.token
    if token is not None and not any(scope.value in token.scopes for scope in scopes):
        names = " or ".join(f"'{scope.value}'" for scope in scopes)
        raise Problem(
            403,
            "token_scope",
            f"This token lacks the {names} scope; make a token with one under Settings → Tokens.",
        )
    return principal.user


def repository_for(request: HttpRequest, name: str, perm: Perm, scope: Scope) -> tuple[Any, Repository]:
    user = actor(request, scope)
    if not has_perm(user, Perm.VIEW):
        raise Http404(f"No repository named '{name}' that you may see.")
    repository = Repository.objects.filter(name=name).first()
    if repository is None:
        raise Http404(f"No repository named '{name}' that you may see. 'rb repo list' shows them.")
    require(user, perm)
    return user, repository


def branch_for(request: HttpRequest, name: str, branch_id: int, perm: Perm, scope: Scope) -> tuple[Any, Branch]:
    user, repository = repository_for(request, name, perm, scope)
    branch = (
        Branch.objects.select_related("repository", "requested_by").filter(pk=branch_id, repository=repository).first()
    )
    if branch is None:
        raise Http404(f"{repository.name} has no branch #{branch_id}.")
    return user, branch


def promotion_for(
    request: HttpRequest, name: str, promotion_id: int, perm: Perm, scope: Scope
) -> tuple[Any, Promotion]:
    user, repository = repository_for(request, name, perm, scope)
    promotion = (
        Promotion.objects.select_related("repository", "branch", "requested_by", "promoted_by")
        .filter(pk=promotion_id, repository=repository)
        .first()
    )
    if promotion is None:
        raise Http404(f"{repository.name} has no promotion #{promotion_id}.")
    return user, promotion


def job_for(request: HttpRequest, job_id: int, perm: Perm, scope: Scope) -> tuple[Any, Job]:
    user = actor(request, scope)
    job = Job.objects.filter(pk=job_id).first() if has_perm(user, Perm.VIEW) else None
    if job is None:
        raise Http404(f"No job #{job_id} that you may see.")
    require(user, perm)
    return user, job


def require_perm(request: HttpRequest, perm: Perm, scope: Scope) -> Any:
    user = actor(request, scope)
    require(user, perm)
    return user


def idempotency_key(request: HttpRequest, action: str) -> str | None:
    """The services' idempotency key for this request's `Idempotency-Key` header.

    Keys are unique across all jobs, so the client's key is bound to the user and the
    action: another user (or another endpoint) sending the same header value never
    gets back what this one made.
    """
    raw = request.headers.get("Idempotency-Key", "").strip()
    if not raw:
        return None
    if len(raw) > 200:
        raise Problem(
            422,
            "validation_failed",
            "The Idempotency-Key header is at most 200 characters; a UUID is a good key.",
            errors=[{"field": "Idempotency-Key", "message": "too long"}],
        )
    user_id = getattr(request.auth.user, "pk", "")  # type: ignore[attr-defined]
    return "api:" + hashlib.sha256(f"{user_id}\0{action}\0{raw}".encode()).hexdigest()[:56]
