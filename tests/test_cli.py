"""The rb CLI on its own: it installs with pip without Django, logs in with a 0600 config
file, prints JSON or tables, and maps every failure to its exit code without a traceback."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from releaseboard.jobs.models import Job, JobLogLine, JobState
from releaseboard.releases.models import Repository
from releaseboard.tokens import service as tokens
from tests.conftest import ROOT

CLI = ROOT / "cli"


def rb(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(CLI), **env}
    return subprocess.run(
        [sys.executable, "-m", "rb", *args], input=stdin, env=full_env, capture_output=True, text=True, timeout=60
    )


def test_pip_installs_the_cli_and_it_never_imports_django(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(CLI)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    assert (target / "bin" / "rb").exists()
    probe = (
        f"import sys; sys.path.insert(0, {str(target)!r}); import rb.main, rb.client, rb.output, rb.completion; "
        "rb.main.build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", probe], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_usage_errors_exit_2_and_a_missing_login_exits_4(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path), "RELEASEBOARD_URL": "", "RELEASEBOARD_TOKEN": ""}
    result = rb("branch", "request", "shop", env=env)  # neither --feature nor --hotfix
    assert result.returncode == 2 and "one of the arguments --feature --hotfix is required" in result.stderr
    result = rb("repo", "list", env=env)
    assert result.returncode == 4 and "rb login" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_server_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {"RELEASEBOARD_URL": "http://127.0.0.1:9", "RELEASEBOARD_TOKEN": "rbp_x", "XDG_CONFIG_HOME": str(tmp_path)}
    result = rb("repo", "list", env=env)
    assert result.returncode == 1 and "Cannot reach" in result.stderr and "Traceback" not in result.stderr


def test_completion_prints_a_bash_script(tmp_path: Path) -> None:
    result = rb("completion", "bash", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 0 and "complete -F _rb_complete rb" in result.stdout
    probe = 'source /dev/stdin; COMP_WORDS=(rb promotion pro); COMP_CWORD=2; _rb_complete; echo "${COMPREPLY[@]}"'
    completed = subprocess.run(["bash", "-c", probe], input=result.stdout, capture_output=True, text=True)
    assert completed.stdout.strip() == "promote"


@pytest.mark.django_db(transaction=True)
def test_login_saves_a_private_config_and_server_refusals_map_to_exit_codes(
    live_server, developer, tmp_path: Path
) -> None:
    repository = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    raw = tokens.create_token(developer, name="laptop", scopes=["read"], days=1).raw
    env = {"XDG_CONFIG_HOME": str(tmp_path), "RELEASEBOARD_URL": "", "RELEASEBOARD_TOKEN": ""}

    result = rb("login", "--url", live_server.url, "--with-token", env=env, stdin=raw + "\n")
    assert result.returncode == 0, result.stderr
    config = tmp_path / "releaseboard" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["token"] == raw

    result = rb("repo", "list", "-o", "json", env=env)
    assert result.returncode == 0 and json.loads(result.stdout)[0]["name"] == "shop"
    result = rb("repo", "list", env=env)
    assert result.returncode == 0 and result.stdout.splitlines()[0].split()[0] == "NAME"

    # 403: the token lacks the scope; 404: no such repository; both exit 3 with the server's detail.
    result = rb("branch", "request", "shop", "--feature", "x", env=env)
    assert result.returncode == 3 and "lacks the 'branches' scope" in result.stderr
    result = rb("board", "nosuch", "-o", "json", env=env)
    assert result.returncode == 3 and json.loads(result.stdout)["code"] == "not_found"
    assert "Traceback" not in result.stderr

    # A failed job: following it exits 1 after printing its log.
    job = Job.objects.create(
        kind="sync", title="Refresh shop", scope_id=repository.pk, scope_name="shop", state=JobState.FAILED,
        reason="git_error", message="The remote refused the fetch.",
    )  # fmt: skip
    JobLogLine.objects.create(job=job, seq=1, text="$ git fetch\nfatal: no\n")
    result = rb("job", "logs", str(job.pk), "--follow", env=env)
    assert result.returncode == 1 and "fatal: no" in result.stderr and "remote refused" in result.stderr

    # 401: a revoked token exits 4.
    tokens.revoke_token(tokens.AccessToken.objects.get(name="laptop"), actor=developer)
    result = rb("repo", "list", env=env)
    assert result.returncode == 4 and "rb login" in result.stderr


def test_make_run_and_make_install_also_install_the_cli_into_the_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    for target in ("run", "install"):
        plan = subprocess.run(
            ["make", "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        assert f"{venv}/bin/python -m pip install --disable-pip-version-check -q ./cli" in plan, plan
