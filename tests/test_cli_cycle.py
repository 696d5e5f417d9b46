"""The rb CLI drives a whole release cycle from a shell script, against a live server and
a real Celery worker: request branch → push with git → request promotion → promote →
release. Master ends on the tested staging commit, with its tag."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from releaseboard.audit.models import AuditEvent
from releaseboard.releases import models, services
from tests.conftest import ROOT, wait_for_job

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CYCLE = r"""
set -eu
export RELEASEBOARD_URL="$URL"
as_dev() { RELEASEBOARD_TOKEN="$DEV_TOKEN" rb "$@"; }
as_rm() { RELEASEBOARD_TOKEN="$RM_TOKEN" rb "$@"; }

as_dev branch request shop --feature search --purpose "Search box for the shop" --wait -o json > branch.json

git -C "$CLONE" fetch -q origin
git -C "$CLONE" checkout -q -B feature/search origin/feature/search
printf 'def search(items, word):\n    return [i for i in items if word in i]\n' > "$CLONE/search.py"
git -C "$CLONE" add search.py
git -C "$CLONE" -c user.name=Dev -c user.email=dev@example.com commit -q -m "Search"
git -C "$CLONE" push -q origin feature/search

as_dev promotion request shop feature/search --wait -o json > promotion.json
PROMOTION=$(python3 -c 'import json; print(json.load(open("promotion.json"))["promotion"]["id"])')
as_rm promotion promote shop "$PROMOTION" --wait -o json > promote.json
as_rm release preview shop -o json > preview.json
as_rm release create shop --wait -o json > release.json
as_rm board shop -o json > board.json
"""


def rb_on_path(tmp_path: Path) -> Path:
    """An `rb` that runs this checkout's cli/ (not whatever is installed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "rb"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT / "cli"}" exec "{sys.executable}" -m rb "$@"\n')
    script.chmod(0o755)
    return bin_dir


def create_token(username: str, *scopes: str, name: str = "ci") -> str:
    out = io.StringIO()
    args = [arg for scope in scopes for arg in ("--scope", scope)]
    call_command("create_token", username, *args, "--days", "30", "--name", name, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


def test_a_release_cycle_from_a_shell_script_with_rb(
    live_server, celery_worker, repository, remote, developer, release_manager, tmp_path
):
    wait_for_job(services.refresh(repository, actor=developer))
    env = {
        **os.environ,
        "PATH": f"{rb_on_path(tmp_path)}:{os.environ['PATH']}",
        "URL": live_server.url,
        "DEV_TOKEN": create_token(developer.username, "read", "branches"),
        "RM_TOKEN": create_token(release_manager.username, "read", "promote"),
        "CLONE": str(remote.work),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    work = tmp_path / "out"
    work.mkdir()
    result = subprocess.run(["sh", "-c", CYCLE], cwd=work, env=env, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr[-4000:]

    def doc(name: str) -> dict:
        return json.loads((work / name).read_text())

    assert doc("branch.json")["branch"]["name"] == "feature/search"
    assert doc("branch.json")["job"]["state"] == "succeeded"
    tested = doc("promotion.json")
    assert tested["job"]["kind"] == "test_promotion" and tested["job"]["state"] == "succeeded"
    merge_sha = tested["promotion"]["merge_sha"]
    assert doc("promote.json")["kind"] == "promote" and doc("promote.json")["state"] == "succeeded"
    assert doc("preview.json")["refusal"] == "" and doc("preview.json")["staging_sha"] == merge_sha
    released = doc("release.json")
    assert released["job"]["state"] == "succeeded" and released["release"]["state"] == "released"
    tag = released["release"]["tag"]

    # Master moved to the tested staging commit, and the tag points at it.
    assert remote.head("staging") == merge_sha
    assert remote.head("master") == merge_sha
    assert remote.tag_target(tag) == merge_sha
    assert models.TestRun.objects.filter(commit_sha=merge_sha, result=models.TestResult.PASSED).exists()
    assert models.Release.objects.get(tag=tag).sha == merge_sha
    assert models.Promotion.objects.get(pk=tested["promotion"]["id"]).state == "released"
    assert doc("board.json")["master"]["sha"] == merge_sha
    # Each change names the token it was made with.
    assert AuditEvent.objects.get(action="branch.requested").details["token"] == "ci"
    assert AuditEvent.objects.get(action="release.requested").actor_name == release_manager.username


def test_promote_wait_follows_the_retest_when_staging_moved_and_exits_with_the_promotions_outcome(
    live_server, celery_worker, repository, remote, developer, release_manager, tmp_path
):
    from tests.flows import passed_promotion, sync

    sync(repository, developer)
    first = passed_promotion(repository, remote, developer, "alpha")
    second = passed_promotion(repository, remote, developer, "beta")
    wait_for_job(services.promote(first, actor=release_manager))  # staging moves past second's tested merge
    env = {
        **os.environ,
        "PATH": f"{rb_on_path(tmp_path)}:{os.environ['PATH']}",
        "RELEASEBOARD_URL": live_server.url,
        "RELEASEBOARD_TOKEN": create_token(release_manager.username, "read", "promote"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    result = subprocess.run(
        ["rb", "promotion", "promote", "shop", str(second.pk), "--wait", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Staging moved since the test" in result.stderr
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.state == "promoted" and remote.head("staging") == second.promoted_sha
    final_job = json.loads(result.stdout)
    assert final_job["kind"] == "promote" and final_job["state"] == "succeeded"
    assert first.promoted_sha in remote.parents(second.promoted_sha)
