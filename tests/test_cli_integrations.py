"""`rb status` and `rb webhook` against a live server: CI reports a status with its token
(another token is refused with exit 3), a webhook's secret is printed once as the last
line, its deliveries are listed after a test event reached a real receiver."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from releaseboard.integrations import outbox
from releaseboard.integrations.models import CommitStatus, Delivery, GateTarget, RequiredContext
from releaseboard.releases.models import Repository
from releaseboard.roles import Role
from releaseboard.tokens import service as tokens
from tests.test_cli import rb
from tests.webhook_receiver import receiver

pytestmark = pytest.mark.django_db(transaction=True)

SHA = "e" * 40


def login(user: User, *scopes: str, name: str, tmp_path: Path, url: str) -> dict[str, str]:
    raw = tokens.create_token(user, name=name, scopes=list(scopes), days=1).raw
    return {"XDG_CONFIG_HOME": str(tmp_path), "RELEASEBOARD_URL": url, "RELEASEBOARD_TOKEN": raw}


def test_rb_status_set_reports_with_the_right_token_and_list_shows_the_gate(
    live_server: Any, developer: User, tmp_path: Path
) -> None:
    shop = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    bot = User.objects.create_user("ci-bot")
    bot.groups.add(Group.objects.get_or_create(name=Role.DEVELOPER.value)[0])
    RequiredContext.objects.create(
        repository=shop, context="ci/build", applies_to=GateTarget.MERGE_COMMIT, reporter_tokens=["ci-bot/actions"]
    )
    ci = login(bot, "statuses", "read", name="actions", tmp_path=tmp_path, url=live_server.url)
    dev = login(developer, "statuses", name="laptop", tmp_path=tmp_path, url=live_server.url)

    result = rb("status", "set", "shop", SHA, "ci/build", "success", "-o", "json", env=dev)
    assert result.returncode == 3, result.stderr
    assert "may not report 'ci/build'" in result.stderr and "ci-bot/actions" in result.stderr
    assert json.loads(result.stdout)["code"] == "status_reporter_refused"

    result = rb("status", "set", "shop", SHA, "ci/build", "pending", env=ci)
    assert result.returncode == 0, result.stderr
    result = rb(
        "status", "set", "shop", SHA, "ci/build", "success",
        "--url", "https://ci.example.com/runs/9", "--description", "all green", "-o", "json", env=ci,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["reporter"] == "ci-bot/actions"
    assert CommitStatus.objects.filter(sha=SHA, token_name="actions").count() == 2

    result = rb("status", "list", "shop", SHA, env=ci)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "CONTEXT", "STATE", "COUNTS"]
    assert lines[1].split()[1:4] == ["ci/build", "success", "True"]
    assert lines[2].split()[1:4] == ["ci/build", "pending", "False"]
    assert "merge_commit: passed" in result.stdout
    result = rb("status", "list", "shop", SHA, "-o", "json", env=ci)
    assert json.loads(result.stdout)["gates"][0]["passed"] is True

    result = rb("status", "set", "shop", "not-a-sha", "ci/lint", "success", env=ci)
    assert result.returncode == 3 and "40-character" in result.stderr and "Traceback" not in result.stderr


def test_rb_webhook_add_prints_the_secret_once_and_lists_deliveries(
    live_server: Any, release_manager: User, developer: User, tmp_path: Path, settings: Any
) -> None:
    settings.WEBHOOK_ALLOW_NETWORKS = "127.0.0.0/8"
    Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    rm = login(release_manager, "read", "promote", name="ops-script", tmp_path=tmp_path, url=live_server.url)
    with receiver() as hook:
        result = rb(
            "webhook", "add", hook.url, "--event", "promotion.promoted", "--event", "test.event",
            "--repo", "shop", "--description", "chat bridge", env=rm,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        secret = result.stdout.splitlines()[-1]
        assert secret.startswith("whsec_") and "shown this once" in result.stderr
        header, row, _ = result.stdout.splitlines()
        assert header.split()[:3] == ["ID", "REPOSITORY", "URL"]
        webhook_id = int(row.split()[0])

        result = rb("webhook", "list", "-o", "json", env=rm)
        assert result.returncode == 0, result.stderr
        [listed] = json.loads(result.stdout)
        assert listed["id"] == webhook_id and listed["events"] == ["promotion.promoted", "test.event"]
        assert secret not in result.stdout and "secret" not in listed
        result = rb("webhook", "list", env=rm)
        assert result.stdout.splitlines()[0].split()[:3] == ["ID", "REPOSITORY", "URL"] and secret not in result.stdout

        result = rb("webhook", "test", str(webhook_id), "-o", "json", env=rm)
        assert result.returncode == 0, result.stderr
        outbox.deliver(json.loads(result.stdout)["id"])  # what the worker does
        assert [got.headers["webhook-id"] for got in hook.received] == [json.loads(result.stdout)["message_id"]]

        result = rb("webhook", "deliveries", str(webhook_id), env=rm)
        assert result.returncode == 0, result.stderr
        header, row = result.stdout.splitlines()
        assert header.split()[:3] == ["ID", "EVENT_TYPE", "STATE"] and row.split()[1:5] == [
            "test.event", "delivered", "1", "200",
        ]  # fmt: skip

        # -o json carries the secret as a field.
        result = rb("webhook", "add", hook.url, "--event", "release.created", "--repo", "shop", "-o", "json", env=rm)
        assert result.returncode == 0 and json.loads(result.stdout)["secret"].startswith("whsec_")

    # A developer may not manage webhooks: exit 3 with what to do.
    dev = login(developer, "read", "promote", name="dev", tmp_path=tmp_path, url=live_server.url)
    result = rb("webhook", "add", "https://93.184.215.14/x", "--event", "release.created", "--repo", "shop", env=dev)
    assert result.returncode == 3 and "Release manager or Admin role" in result.stderr

    result = rb("webhook", "remove", str(webhook_id), env=rm)
    assert result.returncode == 0, result.stderr
    assert not Delivery.objects.filter(subscription_id=webhook_id).exists()
    result = rb("webhook", "deliveries", str(webhook_id), env=rm)
    assert result.returncode == 3 and "not_found" in result.stderr


@pytest.mark.django_db(transaction=False)
def test_completion_knows_the_status_and_webhook_commands(tmp_path: Path) -> None:
    script = rb("completion", "bash", env={"XDG_CONFIG_HOME": str(tmp_path)}).stdout
    for words, expected in (("rb webhook de", "deliveries"), ("rb status s", "set"), ("rb sta", "staging status")):
        probe = f"source /dev/stdin; COMP_WORDS=({words}); COMP_CWORD={len(words.split()) - 1}; _rb_complete; "
        completed = subprocess.run(
            ["bash", "-c", probe + 'echo "${COMPREPLY[@]}"'], input=script, capture_output=True, text=True
        )
        assert completed.stdout.strip() == expected, words
