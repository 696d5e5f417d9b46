"""CI statuses and webhooks through the JSON API: the reporter check judges the token,
a commit's history says which status counts and what the gates read, a webhook's
secret is answered once, deliveries page and go out again on request."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from releaseboard.audit.models import AuditEvent
from releaseboard.integrations import outbox
from releaseboard.integrations.models import CommitStatus, Delivery, DeliveryState, GateTarget, RequiredContext
from releaseboard.releases.models import Repository
from releaseboard.roles import Role
from releaseboard.tokens import service as tokens
from tests.webhook_receiver import receiver

pytestmark = pytest.mark.django_db

SHA = "c" * 40


def bearer(user: User, *scopes: str, name: str = "ci") -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.create_token(user, name=name, scopes=list(scopes), days=1).raw}"}


@pytest.fixture
def shop(db: None) -> Repository:
    return Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")


@pytest.fixture
def ci_bot(db: None) -> User:
    user = User.objects.create_user("ci-bot")
    user.groups.add(Group.objects.get_or_create(name=Role.DEVELOPER.value)[0])
    return user


def post_status(client: Client, headers: dict[str, str], sha: str = SHA, **body: Any) -> Any:
    payload = {"context": "ci/build", "state": "success", **body}
    return client.post(f"/api/v1/repos/shop/statuses/{sha}", payload, content_type="application/json", headers=headers)


def test_a_required_context_is_accepted_from_its_token_and_refused_from_another_with_who_may(
    client: Client, shop: Repository, ci_bot: User, developer: User
) -> None:
    RequiredContext.objects.create(
        repository=shop, context="ci/build", applies_to=GateTarget.MERGE_COMMIT, reporter_tokens=["ci-bot/actions"]
    )
    right = bearer(ci_bot, "statuses", name="actions")

    # The right user with another of their tokens is refused too: the token is named, not the user.
    for headers in (bearer(developer, "statuses", name="laptop"), bearer(ci_bot, "statuses", name="other")):
        response = post_status(client, headers)
        assert response.status_code == 403, response.content
        problem = response.json()
        assert response["Content-Type"] == "application/problem+json"
        assert problem["code"] == "status_reporter_refused"
        assert "may not report 'ci/build'" in problem["detail"] and "ci-bot/actions" in problem["detail"]
        assert problem["reporters"] == ["ci-bot/actions"]
    assert not CommitStatus.objects.exists()

    response = post_status(client, right, target_url="https://ci.example.com/runs/1", description="42 tests")
    assert response.status_code == 201, response.content
    status = response.json()
    assert status["reporter"] == "ci-bot/actions" and status["counts"] is True
    assert status["state"] == "success" and status["target_url"] == "https://ci.example.com/runs/1"
    stored = CommitStatus.objects.get()
    assert stored.token_name == "actions" and stored.reported_by == ci_bot
    assert AuditEvent.objects.filter(action="status.reported", details__token="actions").exists()

    # A token without the statuses scope cannot report at all, whoever holds it.
    response = post_status(client, bearer(ci_bot, "read", name="reader"))
    assert response.status_code == 403 and response.json()["code"] == "token_scope"


def test_bad_fields_are_422_with_the_field_named(client: Client, shop: Repository, ci_bot: User) -> None:
    headers = bearer(ci_bot, "statuses")
    for sha, body, field in (
        ("abc", {}, "sha"),
        (SHA, {"context": "-bad context!"}, "context"),
        (SHA, {"state": "green"}, "state"),
        (SHA, {"target_url": "javascript:alert(1)"}, "target_url"),
    ):
        response = post_status(client, headers, sha=sha, **body)
        assert response.status_code == 422, (body, response.content)
        problem = response.json()
        assert problem["code"] == "validation_failed" and problem["errors"][0]["field"] == field, problem
    assert not CommitStatus.objects.exists()


def test_the_history_is_newest_first_the_latest_per_context_counts_and_the_gates_read_it(
    client: Client, shop: Repository, ci_bot: User, developer: User
) -> None:
    RequiredContext.objects.create(
        repository=shop, context="ci/build", applies_to=GateTarget.MERGE_COMMIT, reporter_tokens=["ci-bot/ci"]
    )
    RequiredContext.objects.create(repository=shop, context="ci/e2e", applies_to=GateTarget.MERGE_COMMIT)
    headers = bearer(ci_bot, "statuses")
    assert post_status(client, headers, state="pending").status_code == 201
    assert post_status(client, headers, state="failure", target_url="https://ci.example.com/2").status_code == 201
    assert post_status(client, headers, context="ci/lint", state="success").status_code == 201
    assert post_status(client, headers, sha="d" * 40, state="success").status_code == 201  # another commit

    response = client.get(f"/api/v1/repos/shop/statuses/{SHA.upper()}", headers=bearer(developer, "read"))
    assert response.status_code == 200, response.content
    data = response.json()
    assert [(s["context"], s["state"], s["counts"]) for s in data["statuses"]] == [
        ("ci/lint", "success", True),
        ("ci/build", "failure", True),
        ("ci/build", "pending", False),
    ]
    [gate] = data["gates"]
    assert gate["target"] == "merge_commit" and gate["passed"] is False
    assert [(c["context"], c["state"], c["reporters"]) for c in gate["checks"]] == [
        ("ci/build", "failure", ["ci-bot/ci"]),
        ("ci/e2e", "missing", []),
    ]
    assert "ci/build is failure — open https://ci.example.com/2" in gate["summary"]
    assert "ci/e2e has not reported yet" in gate["summary"]


@pytest.fixture
def allow_loopback(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_NETWORKS = "127.0.0.0/8"


def test_a_webhook_answers_its_secret_once_and_delivers_pages_and_redelivers(
    client: Client, shop: Repository, release_manager: User, allow_loopback: None
) -> None:
    headers = bearer(release_manager, "read", "promote")
    with receiver([500, 200, 200]) as hook:
        body = {"url": hook.url, "events": ["test.event"], "repo": "shop", "description": "chat"}
        response = client.post("/api/v1/webhooks", body, content_type="application/json", headers=headers)
        assert response.status_code == 201, response.content
        created = response.json()
        secret = created["secret"]
        assert secret.startswith("whsec_") and created["repository"] == "shop" and created["events"] == ["test.event"]
        webhook_id = created["id"]
        # Never again: not in the list, not in the detail, not in the audit trail.
        for url in ("/api/v1/webhooks", f"/api/v1/webhooks/{webhook_id}"):
            answer = client.get(url, headers=headers)
            assert (
                answer.status_code == 200
                and secret not in answer.content.decode()
                and 'secret"' not in answer.content.decode()
            )
        assert not AuditEvent.objects.filter(details__icontains=secret[6:]).exists()

        response = client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=headers)
        assert response.status_code == 202
        first = response.json()
        outbox.deliver(first["id"])  # what the worker does: the receiver answers 500
        response = client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=headers)
        outbox.deliver(response.json()["id"])

        page = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries?limit=1", headers=headers).json()
        assert [d["id"] for d in page["deliveries"]] == [response.json()["id"]]
        assert page["deliveries"][0]["state"] == "delivered" and page["deliveries"][0]["status_code"] == 200
        older = client.get(
            f"/api/v1/webhooks/{webhook_id}/deliveries?limit=1&before={page['older_before']}", headers=headers
        ).json()
        [failed] = older["deliveries"]
        assert failed["id"] == first["id"] and failed["status_code"] == 500 and failed["state"] == "pending"
        assert older["older_before"] is None and older["newer_after"] == first["id"]

        response = client.post(f"/api/v1/webhooks/{webhook_id}/deliveries/{first['id']}/redeliver", headers=headers)
        assert response.status_code == 202 and response.json()["attempts"] == 0
        delivered = outbox.deliver(first["id"])
        assert delivered is not None and delivered.state == DeliveryState.DELIVERED
        ids = [got.headers["webhook-id"] for got in hook.received]
        assert ids.count(first["message_id"]) == 2, "a redelivery keeps its webhook-id"

    response = client.post(f"/api/v1/webhooks/{webhook_id}/rotate", headers=headers)
    assert response.status_code == 200
    assert response.json()["secret"].startswith("whsec_") and response.json()["secret"] != secret
    assert response.json()["previous_secret_expires_at"]
    assert client.delete(f"/api/v1/webhooks/{webhook_id}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/webhooks/{webhook_id}", headers=headers).status_code == 404
    assert not Delivery.objects.exists()


def test_webhook_refusals_are_problem_documents(
    client: Client, shop: Repository, release_manager: User, admin_user: User, allow_loopback: None
) -> None:
    rm = bearer(release_manager, "promote", "read")
    admin = bearer(admin_user, "admin", name="a")
    url, events = "https://93.184.215.14/x", ["release.created"]
    cases = (
        # A release manager may not subscribe to every repository's events.
        (rm, {"url": url, "events": events}, 403, None),
        (rm, {"url": url, "events": ["nosuch.event"], "repo": "shop"}, 422, "events"),
        (rm, {"url": url, "events": events, "repo": "nosuch"}, 422, "repo"),
        (rm, {"url": url, "events": events, "repo": "shop", "format": "xml"}, 422, "format"),
        # The SSRF guard: a private address is refused unless an admin allowlists its network.
        (admin, {"url": "http://10.0.0.7/x", "events": events}, 422, "url"),
    )  # fmt: skip
    for headers, body, status, field in cases:
        response = client.post("/api/v1/webhooks", body, content_type="application/json", headers=headers)
        assert response.status_code == status, (body, response.content)
        problem = response.json()
        assert response["Content-Type"] == "application/problem+json"
        if field:
            assert problem["errors"][0]["field"] == field, problem
        else:
            assert "Only an admin" in problem["detail"]
    # The admin's all-repository subscription is not the release manager's to see.
    response = client.post(
        "/api/v1/webhooks",
        {"url": "https://93.184.215.14/all", "events": ["release.created"]},
        content_type="application/json",
        headers=bearer(admin_user, "admin", name="b"),
    )
    assert response.status_code == 201 and response.json()["repository"] is None
    assert client.get(f"/api/v1/webhooks/{response.json()['id']}", headers=rm).status_code == 404
    assert client.get("/api/v1/webhooks", headers=rm).json() == []
