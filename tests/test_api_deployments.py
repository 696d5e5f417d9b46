"""The deployments API: real releases, real deploy commands in the sandbox (jobs run
in-process), called with tokens as scripts call it."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from releaseboard.deployments.models import Deployment, Environment, Incident
from releaseboard.tokens import service as tokens
from releaseboard.tokens.models import AccessToken
from tests.conftest import run_jobs
from tests.deploy_flows import deployed, environments, release

pytestmark = pytest.mark.django_db


class Caller:
    """A script with one token."""

    def __init__(self, user: User, *scopes: str) -> None:
        raw = tokens.create_token(user, name="script-" + "-".join(scopes), scopes=list(scopes), days=1).raw
        self.client = Client(headers={"Authorization": f"Bearer {raw}"})

    def get(self, path: str, **query: Any) -> Any:
        return self.client.get(f"/api/v1{path}", query)

    def post(self, path: str, body: dict[str, Any] | None = None, key: str = "") -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        return self.client.post(f"/api/v1{path}", body or {}, content_type="application/json", headers=headers)


@pytest.fixture
def envs(repository, tmp_path):
    return environments(repository, tmp_path / "envs")


def _deployed_through_api(caller: Caller, env: str, body: dict[str, Any], key: str = "") -> dict[str, Any]:
    response = caller.post(f"/repos/shop/environments/{env}/deploy", body, key=key)
    assert response.status_code == 201, response.content
    run_jobs()
    shown = caller.get(f"/repos/shop/deployments/{response.json()['deployment']['id']}").json()
    assert shown["deployment"]["state"] == "succeeded", shown["deployment"]["state_message"]
    return shown


def test_deploy_to_staging_then_production_answers_with_the_deployment_and_its_job_once_per_key(
    repository, remote, developer, release_manager, ops, envs, tmp_path
):
    staging, production = envs
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    rm = Caller(release_manager, "read", "deploy")

    response = rm.post("/repos/shop/environments/staging/deploy", {"version": "v0.1.0"}, key="k-1")
    assert response.status_code == 201, response.content
    started = response.json()
    assert started["deployment"]["version"] == "0.1.0" and started["deployment"]["sha"] == v1.sha
    assert started["deployment"]["state"] == "queued" and started["job"]["kind"] == "deploy"
    assert started["job"]["id"] == started["deployment"]["job_id"]
    again = rm.post("/repos/shop/environments/staging/deploy", {"version": "0.1.0"}, key="k-1")
    assert again.status_code == 201 and again.json()["deployment"]["id"] == started["deployment"]["id"]
    assert Deployment.objects.count() == 1
    run_jobs()
    assert deployed(tmp_path / "envs", staging) == ["0.1.0", v1.sha]

    shown = _deployed_through_api(Caller(ops, "read", "deploy"), "production", {})  # default: the latest release
    assert shown["deployment"]["label"] == "v0.1.0" and shown["job"]["state"] == "succeeded"
    listed = rm.get("/repos/shop/environments").json()
    assert [(e["name"], e["current"]["version"]) for e in listed] == [("staging", "0.1.0"), ("production", "0.1.0")]
    detail = rm.get("/repos/shop/environments/production").json()
    assert detail["environment"]["tier"] == "production" and detail["environment"]["protected"] is True
    assert [d["id"] for d in detail["history"]] == [shown["deployment"]["id"]]
    assert rm.get("/repos/shop/environments/nowhere").json()["detail"].endswith("'rb env list shop' lists them.")


def test_refusals_map_to_problem_documents_with_what_to_do_next(
    repository, remote, developer, release_manager, ops, envs
):
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    rm = Caller(release_manager, "read", "deploy")

    # Never on a staging-tier environment: 422 on the override field, until a reason is given.
    response = rm.post("/repos/shop/environments/production/deploy", {"version": "0.1.0"})
    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "override_reason"
    assert "Deploy it to staging first" in response.json()["detail"]
    response = rm.post("/repos/shop/environments/staging/deploy", {"version": "9.9.9"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "version"

    # A developer may not deploy to a protected environment; a read token may not deploy at all.
    dev = Caller(developer, "read", "deploy")
    response = dev.post("/repos/shop/environments/staging/deploy", {})
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert "only release managers and Ops" in response.json()["detail"]
    response = Caller(release_manager, "read").post("/repos/shop/environments/staging/deploy", {})
    assert response.status_code == 403 and response.json()["code"] == "token_scope"
    assert "'deploy' scope" in response.json()["detail"]

    # A lock stops deploys (409) until someone unlocks; locking twice is a conflict too.
    locked = rm.post("/repos/shop/environments/staging/lock", {"reason": "Database migration"})
    assert locked.status_code == 200 and locked.json()["locked"] is True
    assert locked.json()["locked_by"] == release_manager.username
    assert rm.post("/repos/shop/environments/staging/lock", {"reason": "again"}).status_code == 409
    response = rm.post("/repos/shop/environments/staging/deploy", {"version": "0.1.0"})
    assert response.status_code == 409 and response.json()["code"] == "state_conflict"
    assert "Database migration" in response.json()["detail"] and "Unlock it" in response.json()["detail"]
    assert rm.post("/repos/shop/environments/staging/unlock").json()["locked"] is False
    assert rm.post("/repos/shop/environments/staging/unlock").status_code == 409
    assert _deployed_through_api(rm, "staging", {"version": "0.1.0"})["deployment"]["sha"] == v1.sha
    assert not Environment.objects.get(name="staging").is_locked


def test_a_rollback_pins_the_environment_until_a_deploy_goes_forward_on_purpose(
    repository, remote, developer, release_manager, ops, envs, tmp_path
):
    staging, production = envs
    release(repository, remote, developer, release_manager, "one", "0.1.0")
    release(repository, remote, developer, release_manager, "two", "0.2.0")
    ops_script = Caller(ops, "read", "deploy")
    for version in ("0.1.0", "0.2.0"):
        _deployed_through_api(ops_script, "staging", {"version": version})
        _deployed_through_api(ops_script, "production", {"version": version})

    path = "/repos/shop/environments/production/rollback"
    response = ops_script.post(path, {"to_version": "0.1.0", "reason": " "})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "reason"
    response = ops_script.post(path, {"to_version": "0.0.9", "reason": "Checkout fails"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "to_version"
    response = ops_script.post(path, {"to_version": "0.1.0", "reason": "Checkout fails"}, key="rb-1")
    assert response.status_code == 201, response.content
    assert ops_script.post(path, {"to_version": "0.1.0", "reason": "Checkout fails"}, key="rb-1").json()[
        "deployment"
    ]["id"] == response.json()["deployment"]["id"]  # fmt: skip
    run_jobs()
    assert deployed(tmp_path / "envs", production)[0] == "0.1.0"
    card = ops_script.get("/repos/shop/environments/production").json()["environment"]
    assert card["pinned"] is True and card["current"]["kind"] == "rollback" and card["current"]["previous"] == "v0.2.0"

    response = ops_script.post("/repos/shop/environments/production/deploy", {"version": "0.2.0"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "forward"
    redeploy = ops_script.post("/repos/shop/environments/production/redeploy")
    assert redeploy.status_code == 201 and redeploy.json()["deployment"]["kind"] == "redeploy"
    run_jobs()
    shown = _deployed_through_api(ops_script, "production", {"version": "0.2.0", "forward": True})
    assert shown["deployment"]["kind"] == "deploy" and deployed(tmp_path / "envs", production)[0] == "0.2.0"


def test_ops_open_and_close_an_incident_and_the_metrics_count_it(
    repository, remote, developer, release_manager, ops, envs
):
    release(repository, remote, developer, release_manager, "one", "0.1.0")
    ops_script = Caller(ops, "read", "deploy")
    on_staging = _deployed_through_api(ops_script, "staging", {})["deployment"]
    on_production = _deployed_through_api(ops_script, "production", {})["deployment"]

    body = {"deployment": on_production["id"], "description": "Checkout 500s", "link": "https://status.example/1"}
    response = Caller(release_manager, "read", "deploy").post("/repos/shop/incidents", body)
    assert response.status_code == 403 and "manage incidents" in response.json()["detail"]
    response = ops_script.post("/repos/shop/incidents", {**body, "deployment": on_staging["id"]})
    assert response.status_code == 409 and "production deployment" in response.json()["detail"]
    response = ops_script.post("/repos/shop/incidents", {**body, "deployment": 999999})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "deployment"
    response = ops_script.post("/repos/shop/incidents", {**body, "link": "ftp://x"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "link"
    response = ops_script.post("/repos/shop/incidents", body)
    assert response.status_code == 201, response.content
    incident = response.json()
    assert incident["open"] is True and incident["cause"] == on_production["id"] and incident["version"] == "v0.1.0"
    assert ops_script.get("/repos/shop/environments/production").json()["environment"]["open_incidents"] == [
        incident["id"]
    ]

    metrics = ops_script.get("/repos/shop/metrics", days=30).json()
    figures = {f["key"]: f for f in metrics["figures"]}
    assert metrics["repository"] == "shop" and metrics["days"] == 30
    assert figures["frequency"]["numerator"] == 1 and figures["frequency"]["band"]
    assert (figures["failure_rate"]["numerator"], figures["failure_rate"]["denominator"]) == (1, 1)
    assert figures["failure_rate"]["value"] == 1.0
    assert sum(w["deployments"] for w in metrics["weeks"]) == 1
    assert sum(w["failures"] for w in metrics["weeks"]) == 1
    everywhere = ops_script.get("/metrics", days=30).json()
    assert everywhere["repository"] is None and everywhere["figures"][0]["numerator"] == 1
    response = ops_script.get("/metrics", days=0)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "days"

    closed = ops_script.post(f"/repos/shop/incidents/{incident['id']}/close", {"note": "Restarted payments"})
    assert closed.status_code == 200 and closed.json()["open"] is False
    assert closed.json()["closed_by"] == ops.username and closed.json()["close_note"] == "Restarted payments"
    again = ops_script.post(f"/repos/shop/incidents/{incident['id']}/close", {"note": "again"})
    assert again.status_code == 409 and "resolved already" in again.json()["detail"]
    assert ops_script.get("/repos/shop/incidents", open=True).json() == []
    assert [i["id"] for i in ops_script.get("/repos/shop/incidents").json()] == [incident["id"]]
    assert Incident.objects.get().close_note == "Restarted payments"


def test_the_tokens_page_and_create_token_offer_the_deploy_scope(ops: User) -> None:
    client = Client()
    client.force_login(ops)
    page = client.get("/settings/tokens/").content.decode()
    assert 'value="deploy"' in page and "roll back and lock environments" in page
    response = client.post("/settings/tokens/", {"name": "deploy-bot", "scopes": ["read", "deploy"], "days": 30})
    assert response.status_code == 200
    shown = re.search(r"rbp_[A-Za-z0-9_-]{43}", response.content.decode())
    assert shown is not None, "the new token is shown once"
    raw = shown.group(0)
    assert AccessToken.objects.get(user=ops, name="deploy-bot").scopes == ["deploy", "read"]
    me = Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/v1/me").json()
    assert me["scopes"] == ["deploy", "read"]

    out = io.StringIO()
    call_command("create_token", ops.username, "--scope", "deploy", "--name", "cli", stdout=out, stderr=io.StringIO())
    assert AccessToken.objects.get(user=ops, name="cli").scopes == ["deploy"]
