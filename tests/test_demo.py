"""`manage.py load_demo`: users for every role and a demo repository showing every outcome."""

from __future__ import annotations

import os
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs.models import Job, JobState
from releaseboard.releases.management.commands.load_demo import BRANCHES
from releaseboard.releases.models import Repository
from releaseboard.review.junit import summarise
from releaseboard.roles import Role, roles_of

PASSWORD = "demo-password-for-tests"
EXPECTED_ROLES = {
    "developer": {Role.DEVELOPER},
    "release-manager": {Role.RELEASE_MANAGER},
    "ops": {Role.OPS},
    "admin": set(Role),  # a superuser holds every role
}


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


@pytest.fixture
def var_dir(settings, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    # The real hasher takes about a second per password on a small machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.VAR_DIR


def load_demo() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def test_load_demo_twice_creates_everything_once(db, var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASEBOARD_DEMO_PASSWORD", PASSWORD)
    first = load_demo()
    second = load_demo()

    for output in (first, second):
        for username in EXPECTED_ROLES:
            assert f"{username}" in output
        assert PASSWORD in output and "http://127.0.0.1:" in output
    assert "Registered repository shop" in first and "Kept repository shop" in second

    assert sorted(Group.objects.values_list("name", flat=True)) == sorted(role.value for role in Role)
    assert User.objects.count() == len(EXPECTED_ROLES)
    for username, roles in EXPECTED_ROLES.items():
        user = User.objects.get(username=username)
        assert user.check_password(PASSWORD)
        assert roles_of(user) == roles
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    assert admin.groups.filter(name=Role.ADMIN.value).exists()
    assert not User.objects.filter(is_superuser=True).exclude(username="admin").exists()

    repository = Repository.objects.get()
    bare = var_dir / "demo" / "shop.git"
    assert (repository.name, repository.remote_url) == ("shop", str(bare))
    assert (repository.test_command, repository.test_timeout) == ("python3 run_tests.py", 120)
    sync = Job.objects.get()
    assert (sync.kind, sync.state, sync.params) == ("sync", JobState.QUEUED, {"repository": repository.pk})
    assert sync.created_by == admin
    assert AuditEvent.objects.filter(action="repository.registered").count() == 1

    heads = git("--git-dir", str(bare), "for-each-ref", "--format=%(refname:short)", "refs/heads").stdout.split()
    assert sorted(heads) == sorted(["master", "staging", *BRANCHES])
    assert (
        git("--git-dir", str(bare), "rev-parse", "master").stdout
        == git("--git-dir", str(bare), "rev-parse", "staging").stdout
    )
    # discounts and coupons merge cleanly alone, and conflict with each other.
    conflict = git(
        "--git-dir", str(bare), "merge-tree", "--write-tree", "feature/discounts", "feature/coupons", check=False
    )
    assert conflict.returncode == 1, conflict.stdout + conflict.stderr
    assert "cart.py" in conflict.stdout
    for branch in BRANCHES:
        if branch not in ("feature/discounts", "feature/coupons"):
            for other in ("feature/discounts", "feature/coupons"):
                assert (
                    git("--git-dir", str(bare), "merge-tree", "--write-tree", branch, other, check=False).returncode
                    == 0
                ), (branch, other)


def test_demo_branches_show_every_test_outcome(
    db, var_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASEBOARD_DEMO_PASSWORD", PASSWORD)
    load_demo()
    work = tmp_path / "clone"
    git("clone", "-q", str(var_dir / "demo" / "shop.git"), str(work))
    outcomes = {}
    authors = set()
    for branch in ["master", *BRANCHES]:
        git("checkout", "-q", "--detach", f"origin/{branch}", cwd=work)
        authors.add(git("log", "-1", "--format=%an", cwd=work).stdout.strip())
        result = subprocess.run(
            ["python3", "-m", "unittest", "-v"], cwd=work, capture_output=True, text=True, timeout=60
        )
        assert "Ran " in result.stderr, result.stderr
        outcomes[branch] = result.returncode == 0
    assert outcomes == {
        "master": True,
        "feature/search": True,
        "feature/broken-totals": False,
        "feature/discounts": True,
        "feature/coupons": True,
        "hotfix/rounding": True,
    }
    assert {"Dev One", "Dev Two"} <= authors


def test_generated_password_is_kept_in_var(db, var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELEASEBOARD_DEMO_PASSWORD", raising=False)
    load_demo()
    password = (var_dir / "demo-password").read_text().strip()
    assert len(password) >= 12
    assert (var_dir / "demo-password").stat().st_mode & 0o077 == 0
    assert password in load_demo()
    assert (var_dir / "demo-password").read_text().strip() == password
    assert User.objects.get(username="developer").check_password(password)


def test_a_changed_password_is_reset_to_the_demo_password(db, var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASEBOARD_DEMO_PASSWORD", PASSWORD)
    load_demo()
    ops = User.objects.get(username="ops")
    ops.set_password("changed-by-someone")
    ops.save()
    load_demo()
    ops.refresh_from_db()
    assert ops.check_password(PASSWORD)
    monkeypatch.setenv("RELEASEBOARD_DEMO_PASSWORD", "a-new-demo-password")
    assert "a-new-demo-password" in load_demo()
    assert all(user.check_password("a-new-demo-password") for user in User.objects.all())


def test_refuses_when_local_repositories_are_off(
    db,
    var_dir: Path,
    settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELEASEBOARD_DEMO_PASSWORD", PASSWORD)
    settings.ALLOW_LOCAL_REPOSITORIES = False
    with pytest.raises(CommandError, match="RELEASEBOARD_ALLOW_LOCAL_REPOSITORIES=True"):
        load_demo()
    assert not Repository.objects.exists()


def test_demo_test_command_writes_a_junit_report_of_the_failing_test(
    db, var_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASEBOARD_DEMO_PASSWORD", PASSWORD)
    load_demo()
    work = tmp_path / "clone"
    git("clone", "-q", str(var_dir / "demo" / "shop.git"), str(work))
    git("checkout", "-q", "--detach", "origin/feature/broken-totals", cwd=work)
    report = tmp_path / "junit.xml"
    result = subprocess.run(
        ["python3", "run_tests.py"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RELEASEBOARD_JUNIT_XML": str(report)},
    )
    assert result.returncode == 1
    summary = summarise(report)
    assert summary is not None and summary["failures"] + summary["errors"] >= 1
    assert summary["failed"][0]["message"].startswith(("AssertionError", "Error", "Type"))
