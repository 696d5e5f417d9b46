"""Personal access tokens over the API: list them, revoke one. Making a token stays in
the browser (Settings → Tokens) and `manage.py create_token`, where it is shown once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import Http404, HttpRequest
from ninja import Router, Schema, Status

from releaseboard.roles import Perm, has_perm
from releaseboard.tokens.models import AccessToken, Scope
from releaseboard.tokens.service import revoke_token

from .access import actor

router = Router(tags=["tokens"])


class TokenOut(Schema):
    id: int
    user: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


def _token(t: AccessToken) -> dict[str, Any]:
    data = {f: getattr(t, f) for f in TokenOut.model_fields if f not in ("user", "prefix")}
    data.update(user=t.user.get_username(), prefix=f"rbp_{t.prefix}")
    return data


def _visible(user: Any) -> Any:
    tokens = AccessToken.objects.select_related("user")
    # Admins see and revoke everyone's tokens; everyone else only their own.
    return tokens if has_perm(user, Perm.CONFIGURE) else tokens.filter(user=user)


@router.get("/tokens", response=list[TokenOut], summary="Your tokens (admins: everyone's)")
def token_list(request: HttpRequest) -> list[dict[str, Any]]:
    user = actor(request, Scope.READ)
    return [_token(t) for t in _visible(user).order_by("-id")[:500]]


@router.delete("/tokens/{token_id}", response={204: None}, summary="Revoke a token (needs the admin scope)")
def token_revoke(request: HttpRequest, token_id: int) -> Status[None]:
    user = actor(request, Scope.ADMIN)
    token = _visible(user).filter(pk=token_id).first()
    if token is None:
        raise Http404(f"No token #{token_id} that you may revoke.")
    revoke_token(token, actor=user)
    return Status(204, None)
