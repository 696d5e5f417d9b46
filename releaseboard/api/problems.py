"""Errors as application/problem+json (RFC 9457), each with a stable `code`.

Domain refusals keep their wording (it says what to do next) and get a status: a
refusal about one field is a 422 with field errors, any other refusal is a state
conflict (409). Clients branch on `code`, people read `detail`.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from releaseboard.refusals import Refused
from releaseboard.tokens.service import TokenRefused

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Validation failed",
    429: "Too many requests",
}


class Problem(Exception):
    """Raise anywhere in an endpoint to answer with one problem document."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra
        super().__init__(detail)


def problem_response(status: int, code: str, detail: str, **extra: Any) -> HttpResponse:
    body = {
        "type": f"urn:releaseboard:problem:{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return HttpResponse(json.dumps(body), status=status, content_type="application/problem+json")


def _validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "payload")]
        out.append({"field": ".".join(loc) or "body", "message": str(error.get("msg", "invalid"))})
    return out


def install(api: NinjaAPI) -> None:
    """Replace ninja's default error bodies with problem documents."""

    def on_problem(request: HttpRequest, exc: Any) -> HttpResponse:
        response = problem_response(exc.status, exc.code, exc.detail, **exc.extra)
        if exc.status == 429 and "retry_after" in exc.extra:
            response["Retry-After"] = str(exc.extra["retry_after"])
        return response

    def on_refused(request: HttpRequest, exc: Any) -> HttpResponse:
        if getattr(exc, "forbidden", False):
            return problem_response(403, "forbidden", exc.message)
        if exc.field:
            return problem_response(
                422, "validation_failed", exc.message, errors=[{"field": exc.field, "message": exc.message}]
            )
        return problem_response(409, "state_conflict", exc.message)

    def on_denied(request: HttpRequest, exc: Any) -> HttpResponse:
        return problem_response(403, "forbidden", str(exc) or "Your roles do not allow this.")

    def on_404(request: HttpRequest, exc: Any) -> HttpResponse:
        return problem_response(404, "not_found", str(exc) or "There is nothing here; check the name or id.")

    def on_validation(request: HttpRequest, exc: Any) -> HttpResponse:
        errors = _validation_errors(exc.errors)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "The request is not valid."
        return problem_response(422, "validation_failed", detail, errors=errors)

    def on_auth(request: HttpRequest, exc: Any) -> HttpResponse:
        return problem_response(
            401,
            "not_authenticated",
            "Send 'Authorization: Bearer rbp_…' with a personal access token (Settings → Tokens), "
            "or sign in with the browser.",
        )

    def on_http(request: HttpRequest, exc: Any) -> HttpResponse:
        code = {403: "csrf_failed" if "CSRF" in str(exc) else "forbidden", 429: "throttled"}.get(
            exc.status_code, "error"
        )
        detail = str(exc)
        if code == "csrf_failed":
            detail = "The CSRF check failed: send the X-CSRFToken header with the csrftoken cookie's value."
        return problem_response(exc.status_code, code, detail)

    api.add_exception_handler(Problem, on_problem)
    api.add_exception_handler(Refused, on_refused)
    api.add_exception_handler(TokenRefused, on_refused)
    api.add_exception_handler(PermissionDenied, on_denied)
    api.add_exception_handler(Http404, on_404)
    api.add_exception_handler(ValidationError, on_validation)
    api.add_exception_handler(AuthenticationError, on_auth)
    api.add_exception_handler(HttpError, on_http)
