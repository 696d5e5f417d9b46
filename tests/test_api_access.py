"""Who may call what in the JSON API: every route × persona × way of signing in.

Each row names a route, the token scope it needs, and the status each persona gets with
the browser session: developer, release manager, ops, admin, outsider (signed in, no
role). Anonymous callers always get 401. With a token the persona gets the same status
when the token has the route's scope (or one of them: "promote|admin"), and 403
`token_scope` with any other single scope: a token never grants more than its user's
roles, and never more than its scopes.
Statuses other than 401/403/404 mean the call got through to the service (409/422 are
the service's own refusals of these objects' states). Every call runs in a savepoint
that is rolled back, so each one sees the same objects.
`test_table_covers_every_route_in_the_openapi_schema` fails for a route without a row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils.timezone import now

from releaseboard.api.main import api
from releaseboard.deployments.models import Deployment, DeploymentState, Environment, Incident, Tier
from releaseboard.integrations.models import Delivery, Subscription
from releaseboard.jobs.models import Job, JobState
from releaseboard.policy.models import DriftAlarm, FreezeWindow, HotfixException
from releaseboard.releases.models import Branch, Promotion, Release, ReleaseState, Repository
from releaseboard.tokens import service as tokens
from releaseboard.tokens.models import Scope

PERSONAS = ("developer", "release_manager", "ops", "admin_user", "outsider")
NONE = ""  # /me needs no scope: any valid token may say whose it is

# method, path,                                        scope,     body,                dev, rm,  ops, admin, outsider
TABLE: list[tuple[str, str, str, Any, int, int, int, int, int]] = [
    ("get", "/me", NONE, None, 200, 200, 200, 200, 200),
    ("get", "/repos", "read", None, 200, 200, 200, 200, 403),
    ("get", "/repos/{repo}", "read", None, 200, 200, 200, 200, 404),
    ("get", "/repos/{repo}/board", "read", None, 200, 200, 200, 200, 404),
    ("post", "/repos/{repo}/refresh", "branches", None, 202, 202, 403, 202, 404),
    ("get", "/repos/{repo}/branches", "read", None, 200, 200, 200, 200, 404),
    ("post", "/repos/{repo}/branches", "branches", "branch", 201, 201, 403, 403, 404),
    ("get", "/repos/{repo}/branches/{branch_id}", "read", None, 200, 200, 200, 200, 404),
    ("post", "/repos/{repo}/branches/{branch_id}/update", "branches", None, 202, 202, 403, 403, 404),
    ("get", "/repos/{repo}/promotions", "read", None, 200, 200, 200, 200, 404),
    ("post", "/repos/{repo}/promotions", "branches", "promotion", 201, 201, 403, 403, 404),
    ("get", "/repos/{repo}/promotions/{promotion_id}", "read", None, 200, 200, 200, 200, 404),
    ("post", "/repos/{repo}/promotions/{promotion_id}/retest", "branches", None, 202, 202, 403, 403, 404),
    # No passing test yet: a release manager gets through to the service, which refuses (409).
    ("post", "/repos/{repo}/promotions/{promotion_id}/promote", "promote", None, 403, 409, 403, 403, 404),
    ("post", "/repos/{repo}/staging/test", "branches", None, 202, 202, 403, 403, 404),
    ("post", "/repos/{repo}/staging/copy-master", "promote", None, 403, 202, 403, 403, 404),
    ("get", "/repos/{repo}/release-preview", "read", None, 200, 200, 200, 200, 404),
    ("get", "/repos/{repo}/releases", "read", None, 200, 200, 200, 200, 404),
    ("get", "/repos/{repo}/releases/{release_id}", "read", None, 200, 200, 200, 200, 404),
    # Staging's head has no passing test: refused by the service (409).
    ("post", "/repos/{repo}/releases", "promote", {}, 403, 409, 403, 403, 404),
    ("get", "/repos/{repo}/policy", "read", None, 200, 200, 200, 200, 404),
    ("post", "/repos/{repo}/lock", "promote", "reason", 403, 201, 403, 403, 404),
    ("post", "/repos/{repo}/unlock", "promote", None, 403, 409, 403, 403, 404),  # not locked
    ("post", "/repos/{repo}/freeze-windows", "promote", "window", 403, 201, 403, 403, 404),
    ("delete", "/repos/{repo}/freeze-windows/{window_id}", "promote", None, 403, 204, 403, 403, 404),
    # The promotion is a feature's: only hotfixes may pass a lock (409).
    ("post", "/repos/{repo}/exceptions", "promote", "exception", 403, 409, 403, 403, 404),
    ("post", "/repos/{repo}/exceptions/{exception_id}/approve", "promote", None, 403, 200, 403, 403, 404),
    ("post", "/repos/{repo}/drift/{alarm_id}/adopt", "promote", "adopt", 403, 200, 403, 403, 404),
    ("get", "/jobs", "read", None, 200, 200, 200, 200, 403),
    ("get", "/jobs/attention", "read", None, 403, 200, 403, 403, 403),
    ("get", "/jobs/{job_id}", "read", None, 200, 200, 200, 200, 404),
    ("get", "/jobs/{job_id}/log", "read", None, 200, 200, 200, 200, 404),
    ("get", "/jobs/{job_id}/events", "read", None, 200, 200, 200, 200, 404),
    # The job has ended: cancelling it is refused by the service (409); retrying it works.
    ("post", "/jobs/{job_id}/cancel", "promote", None, 403, 409, 403, 403, 404),
    ("post", "/jobs/{job_id}/retry", "promote", None, 403, 202, 403, 403, 404),
    # Tokens: everyone lists their own; the developer's own token is revocable by them and by admins.
    ("get", "/tokens", "read", None, 200, 200, 200, 200, 200),
    ("delete", "/tokens/{token_id}", "admin", None, 204, 404, 404, 204, 404),
    ("get", "/audit", "read", None, 403, 200, 200, 200, 403),
    ("get", "/audit/export", "read", None, 403, 200, 200, 200, 403),
    ("get", "/audit/verify", "read", None, 403, 200, 200, 200, 403),
    # Statuses: anyone who sees the repository may report one ("ci/lint" is required of nobody).
    ("post", "/repos/{repo}/statuses/{sha}", "statuses", "status", 201, 201, 201, 201, 404),
    ("get", "/repos/{repo}/statuses/{sha}", "read", None, 200, 200, 200, 200, 404),
    # Webhooks: the repository's subscription is the release manager's and the admin's;
    # a change opens with either the promote or the admin scope, the role decides.
    ("get", "/webhooks", "read", None, 403, 200, 403, 200, 403),
    ("post", "/webhooks", "promote|admin", "webhook", 403, 201, 403, 201, 403),
    ("get", "/webhooks/{webhook_id}", "read", None, 403, 200, 403, 200, 403),
    ("delete", "/webhooks/{webhook_id}", "promote|admin", None, 403, 204, 403, 204, 403),
    ("post", "/webhooks/{webhook_id}/rotate", "promote|admin", None, 403, 200, 403, 200, 403),
    ("post", "/webhooks/{webhook_id}/test", "promote|admin", None, 403, 202, 403, 202, 403),
    ("get", "/webhooks/{webhook_id}/deliveries", "read", None, 403, 200, 403, 200, 403),
    (
        "post",
        "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
        "promote|admin",
        None,
        403,
        202,
        403,
        202,
        403,
    ),
    # Deployments: "staging" is protected and runs v0.2.0; developers and admins may not deploy there.
    ("get", "/repos/{repo}/environments", "read", None, 200, 200, 200, 200, 404),
    ("get", "/repos/{repo}/environments/{env}", "read", None, 200, 200, 200, 200, 404),
    ("post", "/repos/{repo}/environments/{env}/deploy", "deploy", {}, 403, 201, 201, 403, 404),
    ("post", "/repos/{repo}/environments/{env}/rollback", "deploy", "rollback", 403, 201, 201, 403, 404),
    ("post", "/repos/{repo}/environments/{env}/redeploy", "deploy", None, 403, 201, 201, 403, 404),
    ("post", "/repos/{repo}/environments/{env}/lock", "deploy", "reason", 403, 200, 200, 403, 404),
    ("post", "/repos/{repo}/environments/{env}/unlock", "deploy", None, 403, 409, 409, 403, 404),  # not locked
    ("get", "/repos/{repo}/deployments/{deployment_id}", "read", None, 200, 200, 200, 200, 404),
    # Incidents are Ops' own (Perm.MANAGE_INCIDENTS).
    ("get", "/repos/{repo}/incidents", "read", None, 200, 200, 200, 200, 404),
    ("post", "/repos/{repo}/incidents", "deploy", "incident", 403, 403, 201, 403, 404),
    ("post", "/repos/{repo}/incidents/{incident_id}/close", "deploy", "note", 403, 403, 200, 403, 404),
    ("get", "/repos/{repo}/metrics", "read", None, 200, 200, 200, 200, 404),
    ("get", "/metrics", "read", None, 200, 200, 200, 200, 403),
]


@pytest.fixture
def objects(developer: User) -> dict[str, Any]:
    repository = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha="b" * 40)
    branch = Branch.objects.create(
        repository=repository, name="feature/login", kind="feature", head_sha="c" * 40, requested_by=developer
    )
    promotion = Promotion.objects.create(repository=repository, branch=branch, title="Login form")
    # The developer asked for it: only its requester (or a release manager) may request its promotion.
    Branch.objects.create(
        repository=repository, name="feature/free", kind="feature", head_sha="d" * 40, requested_by=developer
    )
    job = Job.objects.create(
        kind="sync", title="Refresh shop", scope_id=repository.pk, scope_name="shop", state=JobState.FAILED
    )
    hotfix = Branch.objects.create(repository=repository, name="hotfix/rounding", kind="hotfix", head_sha="e" * 40)
    hotfix_promotion = Promotion.objects.create(repository=repository, branch=hotfix, title="Rounding")
    exception = HotfixException.objects.create(
        promotion=hotfix_promotion, reason="Customers are billed wrong", requested_by=developer, requested_at=now()
    )
    window = FreezeWindow.objects.create(
        repository=repository, weekdays=[5, 6], start=dt.time(0, 0), end=dt.time(0, 0), time_zone="UTC"
    )
    release = Release.objects.create(repository=repository, version="0.1.0", tag="v0.1.0", sha="b" * 40)
    alarm = DriftAlarm.objects.create(
        repository=repository, branch_name="staging", expected_sha="b" * 40, found_sha="f" * 40, detected_at=now()
    )
    subscription = Subscription.objects.create(
        repository=repository, url="https://93.184.215.14/hook", events=["release.created"], secret="whsec_eA=="
    )
    delivery = Delivery.objects.create(
        subscription=subscription, message_id="msg_matrix", event_type="release.created", body="{}"
    )
    deployments = _deployments(repository, release, developer)
    return {
        **deployments,
        "repo": "shop",
        "sha": "b" * 40,
        "webhook_id": subscription.pk,
        "delivery_id": delivery.pk,
        "branch_id": branch.pk,
        "promotion_id": promotion.pk,
        "job_id": job.pk,
        "exception_id": exception.pk,
        "window_id": window.pk,
        "alarm_id": alarm.pk,
        "release_id": release.pk,
        "token_id": tokens.create_token(developer, name="dev-laptop", scopes=["read"], days=1).token.pk,
    }


def _deployments(repository: Repository, older: Release, developer: User) -> dict[str, Any]:
    """Staging (protected) runs v0.2.0, which v0.1.0 is older than; production ran it too,
    and an open incident blames that production deployment."""
    Release.objects.filter(pk=older.pk).update(state=ReleaseState.RELEASED)
    newer = Release.objects.create(
        repository=repository, version="0.2.0", tag="v0.2.0", sha="b" * 40, state=ReleaseState.RELEASED
    )
    staging = Environment.objects.create(
        repository=repository, name="staging", tier=Tier.STAGING, deploy_command="true"
    )
    production = Environment.objects.create(
        repository=repository, name="production", tier=Tier.PRODUCTION, deploy_command="true"
    )
    done = {"state": DeploymentState.SUCCEEDED, "created_at": now(), "finished_at": now() - dt.timedelta(hours=1)}
    common = {"repository": repository, "release": newer, "version": "0.2.0", "sha": "b" * 40, **done}
    on_staging = Deployment.objects.create(environment=staging, tier=Tier.STAGING, **common)
    on_production = Deployment.objects.create(environment=production, tier=Tier.PRODUCTION, **common)
    Environment.objects.filter(pk=staging.pk).update(current=on_staging)
    Environment.objects.filter(pk=production.pk).update(current=on_production)
    incident = Incident.objects.create(
        repository=repository, cause=on_production, started_at=now(), description="Checkout fails", opened_by=developer
    )
    return {
        "env": "staging",
        "deployment_id": on_staging.pk,
        "production_deployment_id": on_production.pk,
        "incident_id": incident.pk,
    }


BODIES: dict[str, dict[str, Any]] = {
    "branch": {"kind": "feature", "name": "matrix", "purpose": "Access matrix"},
    "promotion": {"branch": "feature/free"},
    "reason": {"reason": "Release day"},
    "window": {"weekdays": [4], "start": "18:00", "end": "08:00", "time_zone": "Europe/Berlin"},
    "exception": {"promotion": "{promotion_id}", "reason": "Urgent"},
    "adopt": {"reason": "Reviewed the commit", "found_sha": "f" * 40},
    "status": {"context": "ci/lint", "state": "success", "target_url": "https://ci.example.com/1"},
    "rollback": {"to_version": "0.1.0", "reason": "Checkout fails"},
    "incident": {"deployment": "{production_deployment_id}", "description": "Checkout fails"},
    "note": {"note": "Restarted the payment service"},
    "webhook": {"url": "https://93.184.215.14/other", "events": ["promotion.promoted"], "repo": "shop"},
}


def call(
    client: Client, method: str, path: str, body: Any, headers: dict[str, str], ids: dict[str, Any] | None = None
) -> tuple[int, Any]:
    ids = ids or {}
    sid = transaction.savepoint()
    try:
        if method in ("get", "delete"):
            response = getattr(client, method)(f"/api/v1{path}", headers=headers)
        else:
            payload = BODIES[body] if isinstance(body, str) else (body or {})
            payload = {k: ids.get(v.strip("{}"), v) if isinstance(v, str) else v for k, v in payload.items()}
            response = client.post(f"/api/v1{path}", payload, content_type="application/json", headers=headers)
    finally:
        transaction.savepoint_rollback(sid)
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json", path
    return response.status_code, response


@pytest.mark.parametrize(
    ("method", "path", "scope", "body", "statuses"),
    [pytest.param(m, p, s, b, st, id=f"{m} {p}") for m, p, s, b, *st in TABLE],
)
def test_route_answers_each_persona_and_token_scope(
    request: pytest.FixtureRequest,
    objects: dict[str, Any],
    method: str,
    path: str,
    scope: str,
    body: Any,
    statuses: list,
) -> None:
    url = path.format(**objects)
    status, _ = call(Client(), method, url, body, {}, objects)
    assert status == 401, f"anonymous {method} {url}"
    for persona, expected in zip(PERSONAS, statuses, strict=True):
        user: User = request.getfixturevalue(persona)
        client = Client()
        client.force_login(user)
        status, response = call(client, method, url, body, {}, objects)
        assert status == expected, f"{persona} session {method} {url}: {response.content[:300]!r}"
        for token_scope in Scope.values:
            raw = tokens.create_token(user, name=f"t-{token_scope}", scopes=[token_scope], days=1).raw
            status, response = call(Client(), method, url, body, {"Authorization": f"Bearer {raw}"}, objects)
            if scope == NONE or token_scope in scope.split("|"):
                assert status == expected, f"{persona} {token_scope} token {method} {url}: {response.content[:300]!r}"
            else:
                assert status == 403, f"{persona} {token_scope} token {method} {url}"
                assert response.json()["code"] == "token_scope"


def test_table_covers_every_route_in_the_openapi_schema() -> None:
    schema = api.get_openapi_schema()
    routes = {(method, path.removeprefix("/api/v1")) for path, item in schema["paths"].items() for method in item}
    rows = {(row[0], row[1]) for row in TABLE}
    assert routes - rows == set(), "API routes without a row in the access matrix"
    assert rows - routes == set(), "rows for API routes that no longer exist"


def test_a_repository_or_job_of_a_probing_outsider_is_404_whether_or_not_it_exists(
    objects: dict[str, Any], outsider: User
) -> None:
    client = Client()
    client.force_login(outsider)
    for url in ("/repos/shop/board", "/repos/nosuch/board", f"/jobs/{objects['job_id']}", "/jobs/999999"):
        status, response = call(client, "get", url, None, {})
        assert status == 404 and response.json()["code"] == "not_found", url


def test_a_branch_of_another_repository_is_not_reachable_by_changing_the_name(
    objects: dict[str, Any], release_manager: User
) -> None:
    Repository.objects.create(name="other", remote_url="/srv/git/other.git", test_command="true")
    client = Client()
    client.force_login(release_manager)
    for method, url in (
        ("get", f"/repos/other/branches/{objects['branch_id']}"),
        ("post", f"/repos/other/promotions/{objects['promotion_id']}/retest"),
    ):
        status, _ = call(client, method, url, None, {})
        assert status == 404, url
