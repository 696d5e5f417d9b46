"""Who is calling: a personal access token (scripts, the rb CLI) or the browser session.

A request that carries `Authorization: Bearer …` is judged by its token alone: a bad
one is a 401 (not a fall-back to the session, whose CSRF refusal would mislead), and a
client that keeps sending bad ones is answered 429 for a while, as sign-ins are locked
out. Without that header the session counts, with Django's CSRF check on unsafe methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.security import APIKeyCookie, HttpBearer

from releaseboard.audit.context import mark_token
from releaseboard.tokens import service as tokens
from releaseboard.tokens.models import AccessToken
from releaseboard.web.security import client_ip

from .problems import Problem


@dataclass
class Principal:
    user: Any
    token: AccessToken | None = None


class BearerToken(HttpBearer):
    def __call__(self, request: HttpRequest) -> Principal | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        client = client_ip(request) or "unknown"
        if tokens.is_throttled(client):
            raise Problem(
                429,
                "too_many_bad_tokens",
                "Too many requests with bad tokens came from this address; wait and try again with a valid token.",
                retry_after=tokens.retry_after_seconds(),
            )
        token = tokens.authenticate(raw.strip(), client) if scheme.lower() == "bearer" else None
        if token is None:
            tokens.note_failure(client)
            raise Problem(
                401,
                "token_invalid",
                "The token is unknown, expired or revoked. Make a new one under Settings → Tokens "
                "(or manage.py create_token) and run 'rb login' again.",
            )
        mark_token(token.name)
        return Principal(token.user, token)

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover - __call__ does it
        return None


class SessionCookie(APIKeyCookie):
    """The browser's session, with CSRF on unsafe methods (ninja's check)."""

    param_name: str = settings.SESSION_COOKIE_NAME

    def __call__(self, request: HttpRequest) -> Principal | None:
        if request.headers.get("Authorization"):
            return None
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return Principal(user)
        return None
