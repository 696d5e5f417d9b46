"""The audit log page: who may read it and how it filters."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from releaseboard.audit.service import record
from releaseboard.releases.models import Repository


@pytest.fixture
def events(db: None, developer: Any, release_manager: Any) -> Repository:
    shop = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    other = Repository.objects.create(name="other", remote_url="/srv/git/other.git", test_command="true")
    with transaction.atomic():
        record("branch.requested", actor=developer, repository=shop, message="<img src=x>")
        record("release.requested", actor=release_manager, repository=shop, from_sha="a" * 40, to_sha="b" * 40)
        record("branch.requested", actor=developer, repository=other)
    return shop


def actions_shown(client: Client, **filters: Any) -> list[tuple[str, str, str]]:
    response = client.get(reverse("web:audit_list"), filters)
    return [(e.actor_name, e.action, e.repository_name) for e in response.context["page"]]


def test_audit_log_lists_newest_first_and_escapes_messages(client: Client, events: Repository, ops: Any) -> None:
    client.force_login(ops)
    page = client.get(reverse("web:audit_list")).content.decode()
    assert actions_shown(client) == [
        ("dev", "branch.requested", "other"),
        ("rm", "release.requested", "shop"),
        ("dev", "branch.requested", "shop"),
    ]
    assert "&lt;img src=x&gt;" in page and "aaaaaaaaaa → bbbbbbbbbb" in page


def test_audit_log_filters_by_repository_actor_and_action(client: Client, events: Repository, ops: Any) -> None:
    client.force_login(ops)
    assert actions_shown(client, repository=events.pk) == [
        ("rm", "release.requested", "shop"),
        ("dev", "branch.requested", "shop"),
    ]
    assert actions_shown(client, actor="rm") == [("rm", "release.requested", "shop")]
    assert actions_shown(client, action="branch.requested", repository=events.pk) == [
        ("dev", "branch.requested", "shop")
    ]


def test_developer_cannot_read_the_audit_log(client: Client, events: Repository, developer: Any) -> None:
    client.force_login(developer)
    assert client.get(reverse("web:audit_list")).status_code == 403
