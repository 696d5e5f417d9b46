"""Loaded by pytest before Django reads its settings (pytest.ini: -p tests.testenv).

Gives each test session its own var/ directory (and each pytest-xdist worker its own
below it, with its own broker files, mirrors and Redis key prefix; pytest-django gives
it its own test database), and picks the services: PostgreSQL
when DATABASE_URL is set, Redis when REDIS_URL is set (else SQLite and the filesystem
broker, the embedded default). With RELEASEBOARD_REQUIRE_SERVICES=1 (CI) a service
that was asked for but cannot be reached stops the run instead of being skipped.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from urllib.parse import urlsplit


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


os.environ.setdefault("RELEASEBOARD_VAR_DIR", tempfile.mkdtemp(prefix="releaseboard-test-"))
# An xdist worker inherits the controller's environment, var dir included: it takes a
# folder of its own in there, so workers never share mirrors, work trees or broker queues
# (their databases are separate, so the same repository id would otherwise collide).
xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if xdist_worker and os.path.basename(os.environ["RELEASEBOARD_VAR_DIR"]) != xdist_worker:
    own_var_dir = os.path.join(os.environ["RELEASEBOARD_VAR_DIR"], xdist_worker)
    os.makedirs(own_var_dir, exist_ok=True)
    os.environ["RELEASEBOARD_VAR_DIR"] = own_var_dir
os.environ.setdefault("RELEASEBOARD_JOB_HEARTBEAT_SECONDS", "1")
os.environ.setdefault("RELEASEBOARD_JOB_LEASE_SECONDS", "10")
os.environ.setdefault("RELEASEBOARD_JOB_REPUBLISH_SECONDS", "5")
os.environ.setdefault("RELEASEBOARD_GIT_NAME", "Releaseboard Test")
required = os.environ.get("RELEASEBOARD_REQUIRE_SERVICES") == "1"

database_url = os.environ.get("DATABASE_URL", "")
if database_url and not database_url.startswith("sqlite") and not _reachable(database_url, 5432):
    if required:
        raise SystemExit(f"DATABASE_URL {database_url} is not reachable and RELEASEBOARD_REQUIRE_SERVICES=1")
    os.environ.pop("DATABASE_URL")

redis_url = os.environ.get("REDIS_URL", "")
if redis_url:
    if _reachable(redis_url, 6379):
        os.environ["CELERY_BROKER_URL"] = redis_url
        # Set in every process, xdist workers included: each gets keys of its own.
        os.environ["RELEASEBOARD_BROKER_PREFIX"] = f"rbtest-{uuid.uuid4().hex[:8]}{xdist_worker}:"
    elif required:
        raise SystemExit(f"REDIS_URL {redis_url} is not reachable and RELEASEBOARD_REQUIRE_SERVICES=1")
