"""The JSON API's behaviour apart from the access matrix: authentication, problem
documents, idempotency, the audit trail of token changes, throttling, CSRF."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.test import Client

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs.models import Job
from releaseboard.releases.models import Branch, Promotion, Repository
from releaseboard.tokens import service as tokens
from releaseboard.tokens.models import AccessToken

pytestmark = pytest.mark.django_db

ALL_SCOPES = ["read", "branches", "promote", "statuses", "admin"]


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def token_for(user: User, scopes: list[str] | None = None, name: str = "ci") -> str:
    return tokens.create_token(user, name=name, scopes=scopes or ALL_SCOPES, days=30).raw


@pytest.fixture
def shop(db: None) -> Repository:
    repository = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha="b" * 40)
    return repository


def test_without_credentials_the_api_answers_401_as_a_problem_document(client: Client, shop: Repository) -> None:
    response = client.get("/api/v1/repos")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_authenticated" and body["status"] == 401
    assert "Bearer" in body["detail"]


def test_a_token_reads_the_board_and_its_last_use_is_recorded(
    client: Client, developer: User, shop: Repository
) -> None:
    raw = token_for(developer, ["read"])
    assert raw.startswith("rbp_")
    response = client.get("/api/v1/repos/shop/board", headers=bearer(raw))
    assert response.status_code == 200, response.content
    assert response.json()["staging"]["sha"] == "b" * 40
    token = AccessToken.objects.get(user=developer)
    assert token.last_used_at is not None
    assert token.digest != raw and raw not in token.digest  # only the keyed digest is kept


def test_an_unknown_expired_or_revoked_token_is_refused_with_401(
    client: Client, developer: User, shop: Repository
) -> None:
    raw = token_for(developer, ["read"])
    assert client.get("/api/v1/repos", headers=bearer(raw + "x")).json()["code"] == "token_invalid"
    token = AccessToken.objects.get(user=developer)
    tokens.revoke_token(token, actor=developer)
    response = client.get("/api/v1/repos", headers=bearer(raw))
    assert response.status_code == 401 and response.json()["code"] == "token_invalid"
    raw2 = token_for(developer, ["read"], name="old")
    from django.utils import timezone

    AccessToken.objects.filter(name="old").update(expires_at=timezone.now())
    assert client.get("/api/v1/repos", headers=bearer(raw2)).status_code == 401


def test_a_token_lacking_the_scope_gets_403_with_code_token_scope(
    client: Client, developer: User, shop: Repository
) -> None:
    raw = token_for(developer, ["read"])
    body = {"kind": "feature", "name": "search", "purpose": "Find things"}
    response = client.post("/api/v1/repos/shop/branches", body, content_type="application/json", headers=bearer(raw))
    assert response.status_code == 403
    assert response.json()["code"] == "token_scope"
    assert not Branch.objects.filter(name="feature/search").exists()


def test_a_token_never_grants_more_than_the_users_roles_now(client: Client, developer: User, shop: Repository) -> None:
    raw = token_for(developer)
    promotion = Promotion.objects.create(
        repository=shop,
        branch=Branch.objects.create(repository=shop, name="feature/x", kind="feature", head_sha="c" * 40),
        title="X",
    )
    response = client.post(f"/api/v1/repos/shop/promotions/{promotion.pk}/promote", headers=bearer(raw))
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    developer.groups.clear()  # the role goes: the token sees nothing from the next request on
    response = client.get("/api/v1/repos/shop/board", headers=bearer(raw))
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_validation_errors_are_422_with_field_errors(client: Client, developer: User, shop: Repository) -> None:
    raw = token_for(developer)
    response = client.post(
        "/api/v1/repos/shop/branches",
        {"kind": "feature", "name": "bad name..", "purpose": "x"},
        content_type="application/json",
        headers=bearer(raw),
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed" and body["errors"][0]["field"] == "name"
    response = client.post(
        "/api/v1/repos/shop/branches", {"kind": "chore"}, content_type="application/json", headers=bearer(raw)
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} >= {"kind", "name", "purpose"}


def test_a_state_conflict_is_409(client: Client, release_manager: User, shop: Repository) -> None:
    raw = token_for(release_manager)
    branch = Branch.objects.create(repository=shop, name="feature/x", kind="feature", head_sha="c" * 40)
    promotion = Promotion.objects.create(repository=shop, branch=branch, title="X", state="promoted")
    response = client.post(f"/api/v1/repos/shop/promotions/{promotion.pk}/promote", headers=bearer(raw))
    assert response.status_code == 409
    assert response.json()["code"] == "state_conflict" and "promoted" in response.json()["detail"].lower()


def test_a_retried_post_with_the_same_idempotency_key_answers_with_what_the_first_made(
    client: Client, developer: User, release_manager: User, shop: Repository
) -> None:
    raw = token_for(developer)
    key = str(uuid.uuid4())
    body = {"kind": "feature", "name": "search", "purpose": "Find things"}
    headers = {**bearer(raw), "Idempotency-Key": key}
    first = client.post("/api/v1/repos/shop/branches", body, content_type="application/json", headers=headers)
    again = client.post("/api/v1/repos/shop/branches", body, content_type="application/json", headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["branch"]["id"] == again.json()["branch"]["id"]
    assert first.json()["job"]["id"] == again.json()["job"]["id"]
    assert Job.objects.filter(kind="create_branch").count() == 1
    # The same header value from another user is another request, not a replay of this one.
    other = {**bearer(token_for(release_manager)), "Idempotency-Key": key}
    body2 = {**body, "name": "search2"}
    response = client.post("/api/v1/repos/shop/branches", body2, content_type="application/json", headers=other)
    assert response.status_code == 201 and response.json()["branch"]["name"] == "feature/search2"


def test_a_change_made_with_a_token_is_audited_with_the_user_and_the_token_name(
    client: Client, developer: User, shop: Repository
) -> None:
    raw = token_for(developer, name="pipeline")
    body = {"kind": "feature", "name": "search", "purpose": "Find things"}
    client.post("/api/v1/repos/shop/branches", body, content_type="application/json", headers=bearer(raw))
    event = AuditEvent.objects.get(action="branch.requested")
    assert event.actor_name == developer.username
    assert event.details["token"] == "pipeline"
    created = AuditEvent.objects.get(action="token.created")
    assert created.details["name"] == "pipeline" and "token" not in created.details
    # A later session request in the same thread is not attributed to the token.
    client.force_login(developer)
    client.post("/r/shop/refresh/")
    assert "token" not in AuditEvent.objects.get(action="repository.refresh_requested").details


def test_repeated_bad_tokens_from_one_client_are_throttled_with_429(
    client: Client, developer: User, shop: Repository
) -> None:
    for _ in range(tokens.FAILURE_LIMIT):
        assert client.get("/api/v1/repos", headers=bearer("rbp_guess")).status_code == 401
    response = client.get("/api/v1/repos", headers=bearer(token_for(developer)))
    assert response.status_code == 429
    assert response.json()["code"] == "too_many_bad_tokens" and int(response["Retry-After"]) > 0
    # Another client address is not held back.
    other = client.get("/api/v1/repos", headers=bearer(token_for(developer, name="b")), REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 200


def test_the_browser_session_works_and_needs_csrf_for_posts(developer: User, shop: Repository) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(developer)
    assert client.get("/api/v1/repos").status_code == 200
    body = {"kind": "feature", "name": "search", "purpose": "Find things"}
    response = client.post("/api/v1/repos/shop/branches", body, content_type="application/json")
    assert response.status_code == 403 and response.json()["code"] == "csrf_failed"
    client.get("/settings/tokens/")  # any page sets the csrftoken cookie
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        "/api/v1/repos/shop/branches", body, content_type="application/json", headers={"X-CSRFToken": csrf}
    )
    assert response.status_code == 201, response.content


def test_a_bad_bearer_token_is_not_rescued_by_a_session(client: Client, developer: User, shop: Repository) -> None:
    client.force_login(developer)
    assert client.get("/api/v1/repos", headers=bearer("rbp_wrong")).status_code == 401


def test_job_log_returns_lines_after_the_cursor(client: Client, developer: User, shop: Repository) -> None:
    from releaseboard.jobs.models import JobLogLine, JobState

    job = Job.objects.create(
        kind="sync", title="Refresh", scope_id=shop.pk, scope_name="shop", state=JobState.SUCCEEDED
    )
    for seq in (1, 2, 3):
        JobLogLine.objects.create(job=job, seq=seq, text=f"line {seq}\n")
    raw = token_for(developer, ["read"])
    body: dict[str, Any] = client.get(f"/api/v1/jobs/{job.pk}/log?after=1", headers=bearer(raw)).json()
    assert [line["seq"] for line in body["lines"]] == [2, 3]
    assert body["next_after"] == 3 and body["done"] is True


def test_job_events_stream_the_log_then_an_end_event(client: Client, developer: User, shop: Repository) -> None:
    from releaseboard.jobs.models import JobLogLine, JobState

    job = Job.objects.create(kind="sync", title="Refresh", scope_id=shop.pk, scope_name="shop", state=JobState.FAILED)
    for seq in (1, 2):
        JobLogLine.objects.create(job=job, seq=seq, text=f"line {seq}\n")
    headers = {**bearer(token_for(developer, ["read"])), "Last-Event-ID": "1"}
    response = client.get(f"/api/v1/jobs/{job.pk}/events", headers=headers)
    assert response["Content-Type"] == "text/event-stream"
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()
    assert "id: 1\n" not in body and "id: 2\nevent: log\n" in body
    assert body.rstrip().splitlines()[-2] == "event: end" and '"state": "failed"' in body


def test_the_bad_token_count_starts_again_after_its_window(client: Client, developer: User, shop: Repository) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from releaseboard.tokens.models import TokenFailure

    for _ in range(tokens.FAILURE_LIMIT):
        client.get("/api/v1/repos", headers=bearer("rbp_guess"))
    assert client.get("/api/v1/repos", headers=bearer(token_for(developer))).status_code == 429
    TokenFailure.objects.update(window_started_at=timezone.now() - tokens.FAILURE_WINDOW - timedelta(seconds=1))
    assert client.get("/api/v1/repos", headers=bearer("rbp_guess")).status_code == 401
    assert TokenFailure.objects.get().failures == 1
    assert client.get("/api/v1/repos", headers=bearer(token_for(developer, name="b"))).status_code == 200
