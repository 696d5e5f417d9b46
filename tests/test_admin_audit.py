"""Every change made in the Django admin is an audit event naming what changed (issue 14, item 8).

Through the real admin with the test client: the forms are fetched, filled in as a
person would (every field the page renders, plus the change) and posted.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from releaseboard.audit.models import AuditEvent
from releaseboard.roles import Role
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "another-long-passphrase-4471"


class FormFields(HTMLParser):
    """The values a browser would post for the admin's main form."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, Any] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.setdefault(name, []).append(a.get("value") or "on")
            else:
                self.data[name] = a.get("value") or ""
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value") or "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_of(client: Client, url: str) -> dict[str, Any]:
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    parser = FormFields()
    parser.feed(page.content.decode())
    parser.data.pop("csrfmiddlewaretoken", None)
    return parser.data


def post(client: Client, url: str, data: dict[str, Any]) -> None:
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[-3000:]


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def only_event(action: str) -> AuditEvent:
    events = list(AuditEvent.objects.filter(action=action))
    assert len(events) == 1, [(e.action, e.details) for e in AuditEvent.objects.all()]
    return events[0]


def test_creating_a_user_and_making_it_a_release_manager_is_audited_field_by_field(admin_client, admin_user):
    post(
        admin_client,
        reverse("admin:auth_user_add"),
        {"username": "carol", "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
    )
    carol = User.objects.get(username="carol")
    created = only_event("user.created")
    assert created.actor == admin_user and created.object_id == carol.pk
    assert created.details["changes"]["username"] == {"from": None, "to": "carol"}
    assert created.details["changes"]["password"] == "password set"
    assert carol.password not in str(created.details) and PASSWORD not in str(created.details)

    rm = Group.objects.get_or_create(name=Role.RELEASE_MANAGER.value)[0]
    url = reverse("admin:auth_user_change", args=[carol.pk])
    data = form_of(admin_client, url)
    data.update(groups=[str(rm.pk)], email="carol@example.com")
    post(admin_client, url, data)

    changed = only_event("user.changed")
    assert changed.actor == admin_user
    assert changed.details["changes"] == {
        "groups": {"from": [], "to": [Role.RELEASE_MANAGER.value]},
        "email": {"from": "", "to": "carol@example.com"},
    }


def test_a_password_reset_in_the_admin_says_so_and_writes_no_hash(admin_client, admin_user, developer):
    post(
        admin_client,
        reverse("admin:auth_user_password_change", args=[developer.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    event = only_event("user.changed")
    assert event.details == {"changes": {"password": "password changed"}}
    developer.refresh_from_db()
    assert developer.check_password(NEW_PASSWORD)
    assert developer.password not in str(event.details)


def test_taking_a_role_away_and_deleting_a_user_are_audited(admin_client, admin_user):
    rm = Group.objects.create(name=Role.RELEASE_MANAGER.value)
    dave = User.objects.create_user("dave", password=PASSWORD)
    dave.groups.add(rm)
    url = reverse("admin:auth_user_change", args=[dave.pk])
    data = form_of(admin_client, url)
    data["groups"] = []
    post(admin_client, url, data)
    assert only_event("user.changed").details["changes"] == {"groups": {"from": [Role.RELEASE_MANAGER.value], "to": []}}

    post(admin_client, reverse("admin:auth_user_delete", args=[dave.pk]), {"post": "yes"})

    deleted = only_event("user.deleted")
    assert deleted.actor == admin_user and deleted.object_repr == "dave"
    assert not User.objects.filter(username="dave").exists()


def test_renaming_a_role_group_is_audited(admin_client):
    group = Group.objects.create(name="Testers")
    url = reverse("admin:auth_group_change", args=[group.pk])
    data = form_of(admin_client, url)
    data["name"] = "QA"
    post(admin_client, url, data)

    assert only_event("role.changed").details["changes"] == {"name": {"from": "Testers", "to": "QA"}}


def test_turning_on_four_eyes_is_audited_as_that_change(admin_client, admin_user, repository):
    url = reverse("admin:releases_repository_change", args=[repository.pk])
    data = form_of(admin_client, url)
    assert "four_eyes" not in data
    data.update(four_eyes=["on"], test_timeout="120")
    post(admin_client, url, data)

    event = only_event("repository.changed")
    assert event.actor == admin_user
    assert event.details["changes"] == {
        "four_eyes": {"from": False, "to": True},
        "test_timeout": {"from": 60, "to": 120},
    }
