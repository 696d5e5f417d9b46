"""docker-compose.yml is valid Compose and wires the services as the README says.

No Docker engine runs here, so the file is checked against the Compose Specification's
JSON schema, vendored in tests/data/ (source and licence: tests/data/README.md), so the
test needs no network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
APP_SERVICES = ("web", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_specification(compose: dict) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_file(compose: dict) -> None:
    """Guard against a schema that accepts anything."""
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = {"services": {"web": {"image": "x", "ports": "8000", "no_such_key": 1}}}
    assert not validator.is_valid(broken)


def test_compose_has_the_five_services(compose: dict) -> None:
    assert set(compose["services"]) == {"postgres", "redis", "web", "worker", "beat"}
    assert compose["services"]["postgres"]["image"].startswith("postgres:16")
    assert compose["services"]["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_get_database_and_broker_urls(compose: dict, service: str) -> None:
    spec = compose["services"][service]
    env = spec["environment"]
    assert "postgres" in env["DATABASE_URL"] and "@postgres:5432/" in env["DATABASE_URL"]
    assert "redis://redis:6379" in env["CELERY_BROKER_URL"]
    assert env["RELEASEBOARD_PRODUCTION"] == "True"
    assert "False" in env["RELEASEBOARD_ALLOW_LOCAL_REPOSITORIES"]
    assert spec["env_file"] == ".env"


def test_commands(compose: dict) -> None:
    services = compose["services"]
    web = " ".join(services["web"]["command"])
    assert re.search(
        r"collectstatic --noinput &&\s+python manage.py migrate --noinput &&\s+exec gunicorn "
        r"releaseboard.wsgi",
        web,
    )
    assert services["worker"]["command"][:6] == ["celery", "-A", "releaseboard", "worker", "-Q", "git,tests"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "releaseboard", "beat"]


def test_volumes_keep_postgres_data_and_worker_mirrors(compose: dict) -> None:
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
    worker = compose["services"]["worker"]
    assert f"worker-var:{worker['environment']['RELEASEBOARD_VAR_DIR']}" in worker["volumes"]
    assert {"postgres-data", "worker-var"} <= set(compose["volumes"])


def test_dockerfile_runs_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "pip install -r requirements.txt" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")


def test_secrets_and_local_state_stay_out_of_the_image() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", ".git", ".venv", "var/"):
        assert entry in ignored
