"""The JSON API at /api/v1/: one NinjaAPI, a router per area, problem+json errors.

OpenAPI is generated from the typed schemas (/api/v1/openapi.json, docs at /api/v1/docs).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from ninja import Router

from releaseboard.roles import roles_of

from . import (
    problems,
    routes_audit,
    routes_deployments,
    routes_jobs,
    routes_policy,
    routes_repos,
    routes_statuses,
    routes_tokens,
    routes_webhooks,
    schemas,
)
from .auth import BearerToken, Principal, SessionCookie
from .openapi import ReleaseboardAPI

api = ReleaseboardAPI(
    title="Releaseboard API",
    version="1",
    description=(
        "Everything the board does, for scripts and the `rb` CLI. Authenticate with "
        "`Authorization: Bearer rbp_…` (Settings → Tokens) or the browser session (with CSRF). "
        "Errors are application/problem+json with a stable `code`. Every POST takes an "
        "`Idempotency-Key` header: a POST that starts a job (branch, promotion, promote, release, "
        "refresh, tests, copy master, update, retry, deploy, rollback, redeploy) answers a retry with "
        "what the first request made. Policy changes, locks and cancel make no job; repeating them is "
        "refused as a conflict (409, e.g. 'already locked'), so nothing happens twice either."
    ),
    urls_namespace="api",
    auth=[BearerToken(), SessionCookie()],
)
problems.install(api)

me_router = Router(tags=["me"])


@me_router.get("/me", response=schemas.MeOut, summary="Who the token or session belongs to")
def me(request: HttpRequest) -> dict[str, Any]:
    principal: Principal = request.auth  # type: ignore[attr-defined]
    return {
        "username": principal.user.get_username(),
        "roles": sorted(r.value for r in roles_of(principal.user)),
        "token": principal.token.name if principal.token else None,
        "scopes": principal.token.scopes if principal.token else None,
    }


api.add_router("", me_router)
api.add_router("", routes_repos.router)
api.add_router("", routes_jobs.router)
api.add_router("", routes_audit.router)
api.add_router("", routes_policy.router)
api.add_router("", routes_tokens.router)
api.add_router("", routes_statuses.router)
api.add_router("", routes_webhooks.router)
api.add_router("", routes_deployments.router)


def _in_own_context(run: Callable[..., Any]) -> Callable[..., Any]:
    # Each request runs in a copy of the context: the token name the authentication
    # marks for the audit (releaseboard.audit.context) ends with the request.
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return contextvars.copy_context().run(run, *args, **kwargs)

    return wrapper


# "view" mode wraps the whole operation, authentication included.
api.add_decorator(_in_own_context, mode="view")
