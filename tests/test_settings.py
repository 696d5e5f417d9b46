"""Settings come from the environment and refuse unsafe production configurations.

Each case starts a fresh Python process, since settings are read once at start.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "releaseboard" / "settings.py"
LONG_KEY = secrets.token_urlsafe(50)
PRODUCTION = {
    "RELEASEBOARD_PRODUCTION": "True",
    "RELEASEBOARD_SECRET_KEY": LONG_KEY,
    "RELEASEBOARD_ALLOWED_HOSTS": "releaseboard.example.com",
    "RELEASEBOARD_ALLOW_LOCAL_REPOSITORIES": "False",
}
# `check --deploy` warnings that production settings may still show. None: HSTS and the
# HTTPS redirect are on by default in production, and the one deliberate exception (no
# HSTS preload, security.W021) is silenced in settings.py with its reason.
KNOWN_DEPLOY_WARNINGS: set[str] = set()


def settings_env_vars() -> set[str]:
    text = SETTINGS.read_text()
    return set(re.findall(r'env_(?:str|bool|int)\(\s*"([A-Z0-9_]+)"', text)) | set(
        re.findall(r'os\.environ(?:\.get\(|\[)\s*"([A-Z0-9_]+)"', text)
    )


def run(env_overrides: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python in a clean environment: no RELEASEBOARD_*, DATABASE_URL or broker set."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RELEASEBOARD_") and k not in ("DATABASE_URL", "CELERY_BROKER_URL")
    }
    env.update({"DJANGO_SETTINGS_MODULE": "releaseboard.settings", "RELEASEBOARD_VAR_DIR": str(tmp_path / "var")})
    env.update(env_overrides)
    argv = list(args) or ["-c", "import django; django.setup(); print('settings ok')"]
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_embedded_default_starts_with_nothing_set(tmp_path: Path) -> None:
    result = run({}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "secret_key").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"RELEASEBOARD_SECRET_KEY": ""}, "RELEASEBOARD_SECRET_KEY must be set in production"),
        ({"RELEASEBOARD_SECRET_KEY": "too-short"}, "RELEASEBOARD_SECRET_KEY must be at least 50 characters"),
        ({"RELEASEBOARD_ALLOWED_HOSTS": ""}, "RELEASEBOARD_ALLOWED_HOSTS must name the host"),
        ({"RELEASEBOARD_DEBUG": "True"}, "RELEASEBOARD_DEBUG must be False in production"),
    ],
    ids=["missing-secret", "short-secret", "no-allowed-hosts", "debug"],
)
def test_production_refuses_unsafe_settings(tmp_path: Path, overrides: dict[str, str], message: str) -> None:
    result = run({**PRODUCTION, **overrides}, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr, result.stderr[-2000:]
    assert "settings ok" not in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RELEASEBOARD_DEBUG", "yes", "RELEASEBOARD_DEBUG must be True or False, not 'yes'"),
        ("RELEASEBOARD_PRODUCTION", "true", "RELEASEBOARD_PRODUCTION must be True or False, not 'true'"),
        ("RELEASEBOARD_JOB_LEASE_SECONDS", "ten", "RELEASEBOARD_JOB_LEASE_SECONDS must be a whole number"),
    ],
)
def test_switches_and_numbers_refuse_anything_ambiguous(tmp_path: Path, name: str, value: str, message: str) -> None:
    result = run({name: value}, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]


def test_env_bool_accepts_only_true_and_false(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from releaseboard.settings import env_bool

    for value, expected in (("True", True), ("False", False), ("", True)):
        monkeypatch.setenv("RB_TEST_SWITCH", value)
        assert env_bool("RB_TEST_SWITCH", True) is expected
    for value in ("yes", "1", "true", "TRUE", "on"):
        monkeypatch.setenv("RB_TEST_SWITCH", value)
        with pytest.raises(ImproperlyConfigured):
            env_bool("RB_TEST_SWITCH")


def test_production_turns_off_local_repositories_by_default(tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "RELEASEBOARD_ALLOW_LOCAL_REPOSITORIES"}
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.ALLOW_LOCAL_REPOSITORIES, s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    result = run(env, tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True", "True"]


def test_check_deploy_reports_no_errors_in_production(tmp_path: Path) -> None:
    result = run(PRODUCTION, tmp_path, "manage.py", "check", "--deploy")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ERRORS:" not in output
    found = set(re.findall(r"\((\w+\.W\d+)\)", output))
    assert found <= KNOWN_DEPLOY_WARNINGS, f"new deploy warnings: {found - KNOWN_DEPLOY_WARNINGS}\n{output}"


def test_every_setting_is_documented() -> None:
    names = settings_env_vars()
    assert len(names) > 20 and "DATABASE_URL" in names
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in sorted(names):
        assert re.search(rf"^#?\s*{name}=", example, re.M), f"{name} is missing from .env.example"
        assert f"`{name}`" in readme, f"{name} is missing from the README's configuration table"


def _security_settings(env: dict[str, str], tmp_path: Path) -> dict[str, object]:
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({n: getattr(s, n, None) for n in ('SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', "
        "'SECURE_PROXY_SSL_HEADER', 'SESSION_COOKIE_AGE', 'SESSION_COOKIE_HTTPONLY', 'CSRF_COOKIE_HTTPONLY', "
        "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'BEHIND_TLS_PROXY')}))"
    )
    result = run(env, tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    import json

    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_defaults_to_https_only(tmp_path: Path) -> None:
    values = _security_settings(PRODUCTION, tmp_path)
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True and values["CSRF_COOKIE_HTTPONLY"] is True
    assert values["SESSION_COOKIE_AGE"] == 8 * 3600
    # Forwarded headers are not believed until the operator says a proxy sets them.
    assert values["BEHIND_TLS_PROXY"] is False and values["SECURE_PROXY_SSL_HEADER"] is None


def test_development_does_not_pin_localhost_to_https(tmp_path: Path) -> None:
    values = _security_settings({}, tmp_path)
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SESSION_COOKIE_SECURE"] is False


def test_behind_a_tls_proxy_trusts_its_forwarded_proto(tmp_path: Path) -> None:
    values = _security_settings(
        {**PRODUCTION, "RELEASEBOARD_BEHIND_TLS_PROXY": "True", "RELEASEBOARD_HSTS_SECONDS": "600"}, tmp_path
    )
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_HSTS_SECONDS"] == 600


def test_check_deploy_is_clean_behind_a_tls_proxy(tmp_path: Path) -> None:
    result = run({**PRODUCTION, "RELEASEBOARD_BEHIND_TLS_PROXY": "True"}, tmp_path, "manage.py", "check", "--deploy")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not re.findall(r"\((\w+\.[WE]\d+)\)", output), output
