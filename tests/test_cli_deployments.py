"""`rb deploy`, `rb rollback`, `rb incident` and `rb metrics` against a live server and a
real worker: two releases go to staging and production (`--wait -o json` exits with the
deployment's outcome), Ops mark an incident, production is rolled back and stays pinned,
and the metrics count what happened."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from releaseboard.deployments.models import Environment, Incident, Tier
from releaseboard.tokens import service as tokens
from tests.deploy_flows import deployed, environments, release
from tests.test_cli import rb

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def login(user: User, *scopes: str, tmp_path: Path, url: str) -> dict[str, str]:
    raw = tokens.create_token(user, name=f"{user.username}-cli", scopes=list(scopes), days=1).raw
    return {"XDG_CONFIG_HOME": str(tmp_path), "RELEASEBOARD_URL": url, "RELEASEBOARD_TOKEN": raw}


def ok(*args: str, env: dict[str, str]) -> Any:
    result = rb(*args, "-o", "json", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_deploy_roll_back_and_read_the_metrics_with_rb(
    live_server: Any,
    celery_worker: Any,
    repository: Any,
    remote: Any,
    developer: User,
    release_manager: User,
    ops: User,
    tmp_path: Path,
) -> None:
    root = tmp_path / "envs"
    staging, production = environments(repository, root)
    v1 = release(repository, remote, developer, release_manager, "one", "0.1.0")
    v2 = release(repository, remote, developer, release_manager, "two", "0.2.0")
    rm = login(release_manager, "read", "deploy", tmp_path=tmp_path, url=live_server.url)
    ops_env = login(ops, "read", "deploy", tmp_path=tmp_path, url=live_server.url)

    # Production takes only what ran on staging: refused (exit 3) with what to do next.
    result = rb("deploy", "shop", "production", "--version", "0.1.0", env=rm)
    assert result.returncode == 3 and "Deploy it to staging first" in result.stderr
    dev = login(developer, "read", "deploy", tmp_path=tmp_path, url=live_server.url)
    result = rb("deploy", "shop", "staging", env=dev)
    assert result.returncode == 3 and "only release managers and Ops" in result.stderr

    for version, sha in (("0.1.0", v1.sha), ("0.2.0", v2.sha)):
        for env in ("staging", "production"):
            done = ok("deploy", "shop", env, "--version", version, "--reason", "release day", "--wait", env=rm)
            assert done["deployment"]["state"] == "succeeded", done["deployment"]["state_message"]
            assert done["job"]["state"] == "succeeded" and done["deployment"]["sha"] == sha
    assert deployed(root, production) == ["0.2.0", v2.sha]
    result = rb("env", "list", "shop", env=rm)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "TIER", "VERSION", "STATE"]
    assert [row.split()[:4] for row in rows] == [
        ["staging", "staging", "v0.2.0", "succeeded"],
        ["production", "production", "v0.2.0", "succeeded"],
    ]

    # Ops blame the 0.2.0 deployment; the rollback resolves the incident and pins production.
    bad = ok("env", "show", "shop", "production", env=ops_env)["environment"]["current"]
    incident = ok(
        "incident", "open", "shop", str(bad["id"]), "--description", "Checkout returns 500",
        "--link", "https://status.example.com/1", env=ops_env,
    )  # fmt: skip
    assert incident["open"] is True and incident["version"] == "v0.2.0"
    back = ok("rollback", "shop", "production", "--to", "0.1.0", "--reason", "Checkout returns 500", "--wait", env=rm)
    assert back["deployment"]["kind"] == "rollback" and back["deployment"]["state"] == "succeeded"
    assert deployed(root, production) == ["0.1.0", v1.sha]
    assert Incident.objects.get(pk=incident["id"]).resolved_by_deployment_id == back["deployment"]["id"]
    result = rb("deploy", "shop", "production", "--version", "0.2.0", env=rm)
    assert result.returncode == 3 and "pinned to v0.1.0 by a rollback" in result.stderr

    # An incident closed by hand.
    other = ok("incident", "open", "shop", str(back["deployment"]["id"]), "--description", "Slow pages", env=ops_env)
    closed = ok("incident", "resolve", "shop", str(other["id"]), "--note", "A cold cache", env=ops_env)
    assert closed["open"] is False and closed["close_note"] == "A cold cache"

    metrics = ok("metrics", "shop", "--days", "30", env=rm)
    figures = {f["key"]: f for f in metrics["figures"]}
    assert figures["frequency"]["numerator"] == 3  # 0.1.0, 0.2.0 and the rollback
    # Failed changes: 0.2.0 (an incident, rolled back) and the rollback (blamed for the slow pages).
    assert (figures["failure_rate"]["numerator"], figures["failure_rate"]["denominator"]) == (2, 3)
    assert (figures["rework"]["numerator"], figures["rework"]["denominator"]) == (1, 3)
    assert sum(w["deployments"] for w in metrics["weeks"]) == 3
    assert ok("metrics", "--all", env=rm)["figures"][0]["numerator"] == 3
    assert rb("metrics", env=rm).returncode == 2
    result = rb("metrics", "shop", env=rm)
    assert result.returncode == 0 and result.stdout.splitlines()[1].split()[:2] == ["KEY", "VALUE"]

    # A deploy command that fails: --wait exits 1 and says why.
    Environment.objects.create(repository=repository, name="broken", tier=Tier.STAGING, deploy_command="false")
    result = rb("deploy", "shop", "broken", "--version", "0.1.0", "--wait", "-o", "json", env=rm)
    assert result.returncode == 1, result.stderr[-3000:]
    assert json.loads(result.stdout)["deployment"]["state"] == "failed" and "failed" in result.stderr
    assert staging.deployments.count() == 2
