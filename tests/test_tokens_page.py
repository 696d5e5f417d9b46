"""Settings → Tokens and `manage.py create_token`: shown once, listed with their last
use, revocable by their owner and by admins, each change an audit event."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from releaseboard.audit.models import AuditEvent
from releaseboard.tokens import service as tokens
from releaseboard.tokens.models import AccessToken

pytestmark = pytest.mark.django_db


def test_a_new_token_is_shown_once_and_then_listed_by_its_prefix(client: Client, developer: User) -> None:
    client.force_login(developer)
    response = client.post("/settings/tokens/", {"name": "ci", "scopes": ["read", "branches"], "days": 30})
    assert response.status_code == 200
    shown = re.search(r"rbp_[A-Za-z0-9_-]{43}", response.content.decode())
    assert shown, "the new token is shown once"
    raw = shown.group(0)
    token = AccessToken.objects.get(user=developer, name="ci")
    assert token.scopes == ["branches", "read"] and token.digest == tokens.digest(raw)
    listing = client.get("/settings/tokens/").content.decode()
    assert raw not in listing and f"rbp_{token.prefix}…" in listing and "never" in listing
    assert AuditEvent.objects.filter(action="token.created", actor=developer).count() == 1


def test_expiry_is_at_most_365_days_and_names_are_unique_per_user(client: Client, developer: User) -> None:
    client.force_login(developer)
    response = client.post("/settings/tokens/", {"name": "ci", "scopes": ["read"], "days": 366})
    assert response.status_code == 200 and not AccessToken.objects.exists()
    client.post("/settings/tokens/", {"name": "ci", "scopes": ["read"], "days": 365})
    response = client.post("/settings/tokens/", {"name": "ci", "scopes": ["read"], "days": 1})
    assert "already have a token named" in response.content.decode()
    assert AccessToken.objects.count() == 1


def test_the_owner_and_admins_revoke_tokens_and_nobody_else_can(
    client: Client, developer: User, release_manager: User, admin_user: User
) -> None:
    mine = tokens.create_token(developer, name="laptop", scopes=["read"], days=5).token
    theirs = tokens.create_token(release_manager, name="ci", scopes=["read"], days=5).token
    client.force_login(developer)
    assert client.post(f"/settings/tokens/{theirs.pk}/revoke/").status_code == 404
    assert client.post(f"/settings/tokens/{mine.pk}/revoke/").status_code == 302
    client.force_login(admin_user)
    assert "ci" in client.get("/settings/tokens/").content.decode()  # admins see others' active tokens
    assert client.post(f"/settings/tokens/{theirs.pk}/revoke/").status_code == 302
    revoked = AccessToken.objects.filter(revoked_at__isnull=False)
    assert set(revoked.values_list("name", flat=True)) == {"laptop", "ci"}
    events = AuditEvent.objects.filter(action="token.revoked").order_by("seq")
    assert [(e.actor_name, e.details["user"]) for e in events] == [("dev", "dev"), ("admin1", "rm")]


def test_create_token_prints_the_token_alone_on_its_last_line(developer: User) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_token", "dev", "--scope", "read", "--scope", "branches", "--days", "30", "--name", "ci",
        stdout=out, stderr=err,
    )  # fmt: skip
    raw = out.getvalue().splitlines()[-1]
    assert re.fullmatch(r"rbp_[A-Za-z0-9_-]{43}", raw)
    token = tokens.authenticate(raw, "127.0.0.1")
    assert token is not None and token.user == developer
    with pytest.raises(CommandError, match="1 to 365 days"):
        call_command("create_token", "dev", "--scope", "read", "--days", "400", "--name", "x", stdout=out, stderr=err)
    with pytest.raises(CommandError, match="no user named"):
        call_command("create_token", "nobody", "--scope", "read", "--name", "x", stdout=out, stderr=err)
