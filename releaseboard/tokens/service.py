"""Creating, revoking and checking personal access tokens.

A token is "rbp_" + 43 random URL-safe characters. Only HMAC-SHA256(TOKEN_DIGEST_KEY,
token) is stored: a copy of the database does not let anyone sign in, and the digest is
compared with hmac.compare_digest. A token never grants more than its user's roles at
the time of the request (the API checks both the scope and the role).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from releaseboard.audit.service import record as audit_record
from releaseboard.roles import Perm, has_perm
from releaseboard.tokens.models import AccessToken, Scope, TokenFailure

TOKEN_PREFIX = "rbp_"
MAX_DAYS = 365
# Bad tokens one client may send in a window before it is answered 429 (as sign-ins are locked out).
FAILURE_LIMIT = 10
FAILURE_WINDOW = timedelta(minutes=15)
# last_used_at is written at most this often per token, not on every request.
LAST_USE_RESOLUTION = timedelta(seconds=30)


class TokenRefused(Exception):
    """A token request the rules refuse; `field` names the form field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)


def digest(raw: str) -> str:
    return hmac.new(settings.TOKEN_DIGEST_KEY.encode(), raw.encode(), hashlib.sha256).hexdigest()


@dataclass
class NewToken:
    token: AccessToken
    raw: str  # shown once, never stored


def create_token(user: Any, *, name: str, scopes: list[str], days: int, actor: Any = None) -> NewToken:
    """Make a token for `user` (by `actor`, the user themselves unless an admin does it)."""
    actor = actor or user
    name = name.strip()
    if not name:
        raise TokenRefused("Give the token a name that says where it is used, e.g. 'ci'.", field="name")
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown or not scopes:
        raise TokenRefused(f"Choose scopes among {', '.join(Scope.values)}.", field="scopes")
    if not 1 <= days <= MAX_DAYS:
        raise TokenRefused(f"A token expires after 1 to {MAX_DAYS} days.", field="days")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = AccessToken.objects.create(
                user=user,
                name=name[:100],
                prefix=raw[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 8],
                digest=digest(raw),
                scopes=sorted(set(scopes)),
                expires_at=timezone.now() + timedelta(days=days),
            )
            audit_record(
                "token.created",
                actor=actor,
                obj=token,
                details={"user": user.get_username(), "name": token.name, "scopes": token.scopes, "days": days},
            )
    except IntegrityError:
        raise TokenRefused(f"You already have a token named '{name}'; pick another name.", field="name") from None
    return NewToken(token, raw)


def may_revoke(actor: Any, token: AccessToken) -> bool:
    return token.user_id == getattr(actor, "pk", None) or has_perm(actor, Perm.CONFIGURE)


def revoke_token(token: AccessToken, *, actor: Any) -> AccessToken:
    """Revoke a token at once: by its owner, or by an admin for anyone."""
    if not may_revoke(actor, token):
        raise PermissionDenied("Only the token's owner or an admin may revoke it.")
    with transaction.atomic():
        changed = AccessToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=actor
        )
        if changed:
            audit_record(
                "token.revoked",
                actor=actor,
                obj=token,
                details={"user": token.user.get_username(), "name": token.name},
            )
    token.refresh_from_db()
    return token


def is_throttled(client: str) -> bool:
    since = timezone.now() - FAILURE_WINDOW
    return TokenFailure.objects.filter(client=client, window_started_at__gt=since, failures__gte=FAILURE_LIMIT).exists()


def note_failure(client: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        # Restart the window if it has passed, else count one more (one UPDATE each, no read).
        restarted = TokenFailure.objects.filter(client=client, window_started_at__lte=now - FAILURE_WINDOW).update(
            failures=1, window_started_at=now
        )
        if restarted or TokenFailure.objects.filter(client=client).update(failures=F("failures") + 1):
            return
    try:
        with transaction.atomic():
            TokenFailure.objects.create(client=client, failures=1, window_started_at=now)
    except IntegrityError:  # another request from this client created the row first
        TokenFailure.objects.filter(client=client).update(failures=F("failures") + 1)


def retry_after_seconds() -> int:
    return int(FAILURE_WINDOW.total_seconds())


def authenticate(raw: str, client: str) -> AccessToken | None:
    """The usable token `raw` names, or None. Updates its last use (coarsely)."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    computed = digest(raw)
    token = AccessToken.objects.select_related("user").filter(digest=computed).first()
    if token is None or not hmac.compare_digest(token.digest, computed):
        return None
    if not token.is_usable or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - LAST_USE_RESOLUTION:
        AccessToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_from=client[:64])
    return token
