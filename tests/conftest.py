"""Shared fixtures: personas for each role, real git remotes, a real Celery worker."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import Client
from django.test.utils import override_settings

from releaseboard.jobs.models import Job
from releaseboard.releases.models import Repository
from releaseboard.roles import Role
from tests.gitrepo import TEST_COMMAND, Remote

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"

# The longest modules, longest first. `make test` hands work to pytest-xdist workers in
# collection order (--dist loadgroup --no-loadscope-reorder), so these start first and
# the short ones fill the gaps at the end.
SLOW_MODULES = (
    "test_worker_faults.py",
    "test_promotion_safety.py",
    "test_owner_death.py",
    "test_status_gates.py",
    "test_deployments.py",
    "test_services.py",
    "test_api_access.py",
    "test_browser_a11y.py",
    "test_views_access.py",
    "test_drift.py",
    "test_drift_races.py",
    "test_jobs_worker.py",
    "test_browser_journey.py",
    "test_browser_deployments.py",
    "test_git_timeouts.py",
    "test_freeze.py",
    "test_branch_intelligence.py",
    "test_cli_cycle.py",
    "test_api_deployments.py",
    "test_radar.py",
    "test_cli_deployments.py",
    "test_staging_rewind.py",
    "test_job_log_bulk.py",
)
# Modules whose tests may run on different xdist workers: each test starts the processes
# it needs and shares nothing with the others. Every other module stays on one worker
# (module-scoped fixtures such as a Celery worker are then started once).
SPLIT_MODULES = {"test_worker_faults.py"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOW_MODULES.index(name) if name in SLOW_MODULES else len(SLOW_MODULES)

    items.sort(key=rank)  # stable: the order inside a module is kept
    for item in items:
        if item.path.name not in SPLIT_MODULES:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's test database, dropped at the end of the run without "database is
    being accessed by other users": a process a test killed (a Celery worker, a test
    command's tree) can keep its PostgreSQL session for a moment, and a database in use is
    not dropped, so it was left behind. This waits for those sessions, then ends any still
    there; they are this run's own (the database is this xdist worker's)."""
    yield
    with django_db_blocker.unblock():
        _end_other_sessions()


def _end_other_sessions(wait: float = 5.0) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    deadline = time.monotonic() + wait
    with connection.cursor() as cursor:
        while True:
            cursor.execute(f"SELECT count(*) {others}")
            if cursor.fetchone()[0] == 0:
                break
            if time.monotonic() > deadline:
                cursor.execute(f"SELECT pg_terminate_backend(pid) {others}")
                break
            time.sleep(0.05)
    connection.close()


FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fast_passwords(settings: object) -> None:
    """Personas are made per test; the production hasher would spend a second on each."""
    settings.PASSWORD_HASHERS = FAST_HASHERS  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def settle_jobs(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test with committed data, stop its leftover jobs before the tables are
    wiped: a session worker still running one would otherwise deadlock with the wipe."""
    marker = request.node.get_closest_marker("django_db")
    transactional = "transactional_db" in request.fixturenames or bool(marker and marker.kwargs.get("transaction"))
    if not transactional:
        yield
        return
    # Set up the database first, so this fixture is torn down before it.
    request.getfixturevalue("transactional_db")
    yield
    from django.utils import timezone

    from releaseboard.jobs.models import JobState

    Job.objects.filter(state=JobState.QUEUED).update(state=JobState.CANCELLED, finished_at=timezone.now())
    Job.objects.filter(state=JobState.RUNNING).update(cancel_requested_at=timezone.now())
    wait_for(
        lambda: not Job.objects.filter(state=JobState.RUNNING, lease_expires_at__gt=timezone.now()).exists(),
        timeout=60,
        what="running jobs to stop",
    )


def _user(username: str, *roles: Role) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    for role in roles:
        group, _ = Group.objects.get_or_create(name=role.value)
        user.groups.add(group)
    return user


@pytest.fixture
def developer(db: None) -> User:
    return _user("dev", Role.DEVELOPER)


@pytest.fixture
def release_manager(db: None) -> User:
    return _user("rm", Role.RELEASE_MANAGER)


@pytest.fixture
def ops(db: None) -> User:
    return _user("ops", Role.OPS)


@pytest.fixture
def admin_user(db: None) -> User:
    return _user("admin1", Role.ADMIN)


@pytest.fixture
def outsider(db: None) -> User:
    """Signed in, but holds no role."""
    return _user("outsider")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path / "git")


@pytest.fixture
def repository(db: None, remote: Remote) -> Repository:
    return Repository.objects.create(name="shop", remote_url=remote.url, test_command=TEST_COMMAND, test_timeout=60)


class GitProcesses(collections.Counter[str]):
    """Counts of git processes started, by subcommand; `order` lists them as they started,
    each with the name of the thread that started it."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, str]] = []

    def clear(self) -> None:
        super().clear()
        self.order.clear()


@pytest.fixture
def git_processes() -> Iterator[GitProcesses]:
    """The git processes started (in any thread), while the fixture is active, counted
    where every process starts (subprocess.Popen, which GitPython uses too)."""
    counts = GitProcesses()
    original = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def counting(self: Any, args: Any, *rest: Any, **kwargs: Any) -> Any:
        argv = [args] if isinstance(args, (str, bytes)) else list(args)
        if argv and os.path.basename(str(argv[0])) == "git":
            words = iter(str(a) for a in argv[1:])
            for word in words:
                if word in ("-C", "-c", "--git-dir", "--work-tree"):
                    next(words, None)
                elif not word.startswith("-"):
                    with _counting_lock:
                        counts[word] += 1
                        counts.order.append((word, threading.current_thread().name))
                    break
        return original(self, args, *rest, **kwargs)

    subprocess.Popen._execute_child = counting  # type: ignore[attr-defined]
    try:
        yield counts
    finally:
        subprocess.Popen._execute_child = original  # type: ignore[attr-defined]


_counting_lock = threading.Lock()


def run_jobs(**filters: object) -> list[Job]:
    """Run queued jobs in this process, oldest first, until no job is active; return
    the jobs that ended. If a session worker is running it may take some of them
    (claims are exclusive); those are waited for."""
    from releaseboard.jobs import execution
    from releaseboard.jobs.models import JobState

    seen = set(Job.objects.filter(state__in=JobState.final(), **filters).values_list("pk", flat=True))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = Job.objects.filter(state=JobState.QUEUED, **filters).order_by("id").first()
        if job is not None:
            _run_in_process(execution.run, job.pk)
            continue
        # One query for "nothing queued or running": between two, a worker could end a job
        # whose final transaction queued a follow-up, and both would be missed.
        if not Job.objects.filter(state__in=JobState.active(), **filters).exists():
            return list(Job.objects.filter(**filters).exclude(pk__in=seen).order_by("id"))
        time.sleep(0.1)
    raise AssertionError("jobs did not settle")


@contextlib.contextmanager
def rolled_back_session(django_db_blocker: Any, username: str, role: Role) -> Iterator[tuple[User, Client]]:
    """For a module-scoped fixture that builds data once: a new user with `role`, signed
    in on a test client, inside a transaction that is rolled back when the block ends."""
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=FAST_HASHERS), transaction.atomic():
        user = _user(username, role)
        client = Client()
        client.force_login(user)
        yield user, client
        transaction.set_rollback(True)


def _run_in_process(run: Callable[[int], None], job_id: int) -> None:
    """Inside a test's transaction (the `db` fixture) the heartbeat thread's own database
    connection cannot see the job row, which is not committed: its renewal would find no
    row and declare the lease lost as soon as a job outlives one heartbeat (a loaded
    machine). There the lease is made long enough not to need renewing."""
    from django.db import connection
    from django.test import override_settings

    if not connection.in_atomic_block:
        run(job_id)
        return
    with override_settings(JOB_HEARTBEAT_SECONDS=3600, JOB_LEASE_SECONDS=3600):
        run(job_id)


def _test_database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{host}/{db['NAME']}"


class CeleryProcess:
    """A real `celery` process (worker or beat) on the test database and broker."""

    ready_text = "ready."

    def __init__(self, args: list[str], log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        env = dict(os.environ)
        env["DATABASE_URL"] = _test_database_url()
        env.update(extra_env or {})
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115  (open while the process runs; closed by stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "releaseboard", *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while self.ready_text not in log_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery {args[0]} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)  # a paused one must wake to exit
                os.killpg(self.proc.pid, signal.SIGTERM)
                # A warm shutdown sometimes hangs in the pool's exit cleanup; do not wait long.
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        # Pool children that outlived the main process would keep the test database open.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()


class WorkerProcess(CeleryProcess):
    def __init__(
        self, log_path: Path, name: str = "w1", concurrency: int = 2, extra_env: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            [
                "worker",
                "-Q",
                "git,tests",
                "-c",
                str(concurrency),
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "info",
            ],
            log_path,
            extra_env,
        )


class BeatProcess(CeleryProcess):
    ready_text = "beat: Starting"

    def __init__(self, log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        env = {
            "RELEASEBOARD_REAPER_INTERVAL_SECONDS": "1",
            "RELEASEBOARD_SYNC_INTERVAL_SECONDS": "3600",
            **(extra_env or {}),
        }
        super().__init__(["beat", "-l", "info", "-s", str(log_path.with_suffix(".schedule"))], log_path, env)


@pytest.fixture(scope="module")
def celery_worker(
    django_db_setup: None, django_db_blocker: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One worker for a test module; modules that kill workers start their own instead."""
    worker = WorkerProcess(tmp_path_factory.mktemp("worker") / "worker.log")
    yield worker
    worker.stop()


def wait_for_job(job: Job, timeout: float = 90) -> Job:
    """Wait until a job reaches its final state (the worker runs it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_final:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job #{job.pk} ({job.kind}) still {job.state} after {timeout} s: {job.message}")


def wait_for(predicate: object, timeout: float = 90, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
