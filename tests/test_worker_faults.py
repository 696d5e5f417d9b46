"""Real worker and broker faults, and jobs that still end exactly once (DESIGN §2.3, §2.4, §5).

Each test starts its own worker(s) and beat (beat runs the reaper every second), then
makes a real fault happen: a pool process or a whole worker killed with SIGKILL, a
worker frozen with SIGSTOP past its lease, a crash right after a push, a push that lands
while its connection is cut, a Redis stopped or emptied (a redis-server of the test's
own, never a shared one), a message delivered twice. The fault points (releaseboard.jobs.faults) only say
*where* a worker stops; the kill, the pause and the lost message are real.

What "exactly once" means here, checked on every path:
- the job row ends in one final state, with one "job.succeeded"/"job.failed" audit event;
- the remote ref moved once: the bare remote records every ref update in its reflog
  (core.logAllRefUpdates=always), so a second push would show as a second line.

Timings come from tests/testenv.py: lease 10 s, heartbeat 1 s, republish 5 s.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from releaseboard.audit.models import AuditEvent
from releaseboard.celery import app as celery_app
from releaseboard.jobs import execution
from releaseboard.jobs.models import Job, JobLogLine, JobReason, JobState, JobStep, Lease
from releaseboard.jobs.service import publish
from releaseboard.jobs.tasks import run_job
from releaseboard.releases import services
from releaseboard.releases.models import Branch, Promotion, PromotionState, Repository, TestRun
from tests.conftest import BeatProcess, CeleryProcess, WorkerProcess, run_jobs, wait_for, wait_for_job
from tests.githttp import http_backend, send_cgi_reply
from tests.gitrepo import TEST_COMMAND, Remote, git

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LEASE = settings.JOB_LEASE_SECONDS
REDIS_SERVER = Path("/usr/bin/redis-server")


# -- processes ---------------------------------------------------------------------------------


class GitQueueWorker(CeleryProcess):
    """A worker on the `git` queue only: it runs the reaper (routed to `git`) but not a
    job of the `tests` queue, so a test can see a re-queued test job stay QUEUED."""

    def __init__(self, log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(
            [
                "worker",
                "-Q",
                "git",
                "-c",
                "1",
                "-n",
                f"gitonly-{uuid.uuid4().hex[:6]}@%h",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "info",
            ],
            log_path,
            extra_env,
        )


class Processes:
    """The celery processes one test starts; all are stopped when the test ends."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[CeleryProcess] = []
        self.fault_dirs: list[Path] = []
        self.env: dict[str, str] = {}  # for every process started from now on (e.g. another broker)

    def fault_dir(self, name: str = "faults") -> Path:
        folder = self.root / name
        folder.mkdir(exist_ok=True)
        self.fault_dirs.append(folder)
        return folder

    def worker(self, name: str, *, concurrency: int = 2, faults: Path | None = None) -> WorkerProcess:
        env = {**self.env, **({"RELEASEBOARD_FAULT_DIR": str(faults)} if faults else {})}
        worker = WorkerProcess(
            self.root / f"{name}.log", name=f"{name}-{uuid.uuid4().hex[:6]}", concurrency=concurrency, extra_env=env
        )
        self.started.append(worker)
        return worker

    def git_queue_worker(self, name: str) -> GitQueueWorker:
        worker = GitQueueWorker(self.root / f"{name}.log", self.env)
        self.started.append(worker)
        return worker

    def beat(self) -> BeatProcess:
        beat = BeatProcess(self.root / "beat.log", self.env)
        self.started.append(beat)
        return beat

    def stop_all(self) -> None:
        # Disarm first, so a worker paused at a fault point can finish and exit.
        for folder in self.fault_dirs:
            for armed in [*folder.glob("*.pause"), *folder.glob("*.crash")]:
                armed.unlink(missing_ok=True)
        # Ask them all to shut down at once (a warm shutdown takes seconds each), then
        # let CeleryProcess.stop wait for each and kill what is left of its group.
        for proc in self.started:
            if proc.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGCONT)  # a stopped group must wake to exit
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.started:
            try:
                proc.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                # A second SIGTERM would only restart the warm shutdown. A worker whose
                # consumer and pool are closed can still hang at exit in billiard's pool
                # finalizer (_help_stuff_finish waits for the inqueue lock a terminated
                # pool process held); nothing is left to lose by then.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in reversed(self.started):
            proc.stop()  # kills what is left of the group, closes the log
        self.started.clear()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path / "procs")
    processes.root.mkdir()
    yield processes
    processes.stop_all()


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """While this file exists, the gated test command waits (see gated_command)."""
    path = tmp_path / "gate"
    path.touch()
    yield path
    path.unlink(missing_ok=True)  # lets a test command orphaned by a killed worker exit


def gated_command(gate: Path) -> str:
    """A repository test command that prints "started" and waits while `gate` exists."""
    script = (
        "import os, sys, time; print('started', flush=True); "
        "[time.sleep(0.1) for _ in iter(lambda: os.path.exists(sys.argv[1]), False)]"
    )
    return f'python3 -c "{script}" {shlex.quote(str(gate))}'


# -- reading what happened ---------------------------------------------------------------------


def events(job: Job, action: str) -> int:
    return AuditEvent.objects.filter(action=action, object_type="job", object_id=job.pk).count()


def log_text(job: Job) -> str:
    return "".join(JobLogLine.objects.filter(job_id=job.pk).order_by("seq").values_list("text", flat=True))


def push_steps(job: Job, **filters: object) -> list[JobStep]:
    return [
        s for s in JobStep.objects.filter(job_id=job.pk, **filters).order_by("seq") if " push --porcelain" in s.command
    ]


def record_ref_updates(remote: Remote) -> None:
    """Make the bare remote log every ref update, so a second push cannot hide."""
    git("--git-dir", str(remote.bare), "config", "core.logAllRefUpdates", "always")


def reflog(remote: Remote, branch: str) -> list[str]:
    path = remote.bare / "logs" / "refs" / "heads" / branch
    return path.read_text().splitlines() if path.exists() else []


def reached(faults: Path, point: str, job: Job, timeout: float = 60) -> int:
    """Wait until the job reaches the fault point; return the pid of the process running it."""
    path = faults / f"{point}.{job.pk}.reached"
    wait_for(
        lambda: path.exists() and path.read_text().strip().isdigit(),
        timeout=timeout,
        what=f"job #{job.pk} to reach {point}",
    )
    return int(path.read_text())


def job_pid(job: Job) -> int:
    """Job.worker is "<host>:<native thread id>"; the job runs on the pool process's main
    thread, whose id is the process id."""
    job.refresh_from_db()
    return int(job.worker.rsplit(":", 1)[1])


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is dead too (its parent has not reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def kill_group(proc: CeleryProcess) -> None:
    """SIGKILL a worker's whole process group: the main process and its pool."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.proc.wait(timeout=10)


def job_page(client: Client, job: Job) -> str:
    response = client.get(reverse("web:job_detail", args=[job.pk]))
    assert response.status_code == 200
    return response.content.decode()


def heartbeat_age(page: str) -> int | None:
    match = re.search(r"<dt>Last heartbeat</dt><dd>(\d+) s ago", page)
    return int(match.group(1)) if match else None


# -- setting the scene (jobs run inline, in this process, before any worker starts) -------------


def synced(repository: Repository, actor: object) -> None:
    """Fetch the remote and test its staging head, so later jobs queue nothing extra."""
    services.refresh(repository, actor=actor)
    for job in run_jobs():
        assert job.state == JobState.SUCCEEDED, job.message


def ready_promotion(repository: Repository, remote: Remote, developer: object, name: str = "search") -> Promotion:
    """A feature branch with a commit whose merge into staging passed its tests."""
    synced(repository, developer)
    branch = services.request_branch(repository, actor=developer, kind="feature", name=name, purpose="work")
    run_jobs()
    remote.commit_on(branch.name, {f"{name}.py": "def find():\n    return 1\n"}, f"Work on {name}")
    branch = Branch.objects.get(pk=branch.pk)
    promotion = services.request_promotion(branch, actor=developer, title=f"Promote {name}")
    for job in run_jobs():
        assert job.state == JobState.SUCCEEDED, job.message
    promotion.refresh_from_db()
    assert promotion.merge_sha and TestRun.objects.filter(commit_sha=promotion.merge_sha, result="passed").exists()
    return promotion


def assert_promoted_once(promotion: Promotion, remote: Remote, staging_before: str) -> None:
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED
    assert remote.head("staging") == promotion.merge_sha
    assert remote.parents("staging")[0] == staging_before
    assert len(reflog(remote, "staging")) == 1, reflog(remote, "staging")
    landed = AuditEvent.objects.filter(
        object_type="promotion", object_id=promotion.pk, action__in=["promotion.promoted", "promotion.reconciled"]
    )
    assert landed.count() == 1, list(landed.values_list("action", flat=True))


# == 8. a worker killed with SIGKILL mid-job ===================================================


def test_a_job_whose_pool_process_is_killed_runs_again_and_succeeds_once(procs, repository, developer, gate):
    synced(repository, developer)
    repository.test_command = gated_command(gate)
    repository.save()
    worker = procs.worker("w1")
    procs.beat()
    job = services.test_staging(repository, actor=developer)
    wait_for(lambda: "started" in log_text(job), timeout=60, what="the test command to start")

    pid = job_pid(job)
    assert pid != worker.pid and parent_pid(pid) == worker.pid, "the job runs in a pool process of the worker"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: is_gone(pid), timeout=10, what="the pool process to die")
    gate.unlink()  # the orphaned first test command ends; the second run passes straight through

    job = wait_for_job(job, timeout=LEASE + 50)
    assert job.state == JobState.SUCCEEDED, job.message
    assert job.attempt == 2
    assert job_pid(job) != pid
    assert events(job, "job.started") == 2
    assert events(job, "job.requeued") == 1
    assert events(job, "job.succeeded") == 1
    assert TestRun.objects.filter(job_id=job.pk).count() == 1
    # The pool process really died under the running task (the worker saw it go).
    assert "signal 9" in worker.log_path.read_text()


def test_a_promotion_whose_worker_group_is_killed_at_the_push_is_pushed_once_by_another_worker(
    procs, repository, remote, developer, release_manager
):
    promotion = ready_promotion(repository, remote, developer)
    record_ref_updates(remote)
    staging_before = remote.head("staging")
    faults = procs.fault_dir()
    (faults / "before_push.pause").touch()
    worker_a = procs.worker("a", concurrency=1, faults=faults)

    job = services.promote(promotion, actor=release_manager)
    pid = reached(faults, "before_push", job)
    assert pid == job_pid(job) and parent_pid(pid) == worker_a.pid
    kill_group(worker_a)
    wait_for(lambda: is_gone(pid), timeout=10, what="the pool process to die with its group")
    assert remote.head("staging") == staging_before and reflog(remote, "staging") == []
    job.refresh_from_db()
    assert job.state == JobState.RUNNING  # nobody is left to say otherwise, until the lease runs out

    procs.worker("b")
    procs.beat()
    job = wait_for_job(job, timeout=LEASE + 50)

    assert job.state == JobState.SUCCEEDED, job.message
    assert job.attempt == 2
    assert events(job, "job.succeeded") == 1
    assert events(job, "job.requeued") == 1
    assert len(push_steps(job)) == 1
    assert_promoted_once(promotion, remote, staging_before)


# == 9. killed after the push, before the database write ======================================


def test_a_promote_job_killed_after_its_push_is_settled_from_the_remote_without_pushing_again(
    procs, repository, remote, developer, release_manager
):
    promotion = ready_promotion(repository, remote, developer)
    record_ref_updates(remote)
    staging_before = remote.head("staging")
    faults = procs.fault_dir()
    (faults / "after_push.crash").touch()  # stays armed: a second push would crash again
    worker = procs.worker("w1", faults=faults)
    procs.beat()

    job = services.promote(promotion, actor=release_manager)
    pid = reached(faults, "after_push", job)
    wait_for(lambda: is_gone(pid), timeout=10, what="the pool process to kill itself")
    # The push landed, the database does not know yet.
    assert remote.head("staging") == promotion.merge_sha
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTING

    job = wait_for_job(job, timeout=LEASE + 50)

    assert job.state == JobState.SUCCEEDED, job.message
    assert job.attempt == 2
    assert events(job, "job.succeeded") == 1
    # Steps of the second attempt (claimed at job.started_at): it read the remote, and pushed nothing.
    second = JobStep.objects.filter(job_id=job.pk, started_at__gte=job.started_at)
    assert second.exists()
    assert push_steps(job, started_at__gte=job.started_at) == []
    assert len(push_steps(job)) == 1
    assert f"is on staging as {promotion.merge_sha[:10]}" in job.message
    # Settled as landed: no re-test or second promote was queued for it.
    assert not Job.objects.filter(subject_type="promotion", subject_id=promotion.pk, pk__gt=job.pk).exists()
    assert_promoted_once(promotion, remote, staging_before)
    assert "signal 9" in worker.log_path.read_text()


# == 9b. the push lands, and its client sees an error ==========================================


class CuttingGitServer:
    """`git http-backend` for the remote, on 127.0.0.1. Armed with cut_next_push(), it lets
    git receive-pack apply the next push in full (the ref is updated on the remote) and
    then closes the connection without an answer: the pusher cannot tell whether it landed.
    With go_dark, it also stops answering anything until back_online()."""

    def __init__(self, remote: Remote) -> None:
        git("--git-dir", str(remote.bare), "config", "http.receivepack", "true")
        self.cut_armed = self.dark = self.go_dark = False
        self.cuts = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.serve()

            def do_POST(self) -> None:
                self.serve()

            def serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if server.dark:
                    self.close_connection = True
                    return
                reply = http_backend(self, remote.root, body)
                if server.cut_armed and self.path.endswith("/git-receive-pack"):
                    # receive-pack has finished: the push is applied. Its answer is dropped.
                    server.cut_armed, server.dark = False, server.go_dark
                    server.cuts += 1
                    self.close_connection = True
                    return
                send_cgi_reply(self, reply)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{remote.bare.name}"

    def cut_next_push(self, *, go_dark: bool = False) -> None:
        self.cut_armed, self.go_dark = True, go_dark

    def back_online(self) -> None:
        self.dark = False

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(remote: Remote, repository: Repository) -> Iterator[CuttingGitServer]:
    """The repository's remote, reached over HTTP through a server that can cut a push."""
    server = CuttingGitServer(remote)
    repository.remote_url = server.url
    repository.save(update_fields=["remote_url"])
    yield server
    server.stop()


def test_a_push_that_lands_while_its_connection_is_cut_is_settled_from_the_remote_without_pushing_again(
    served, repository, remote, developer, release_manager
):
    promotion = ready_promotion(repository, remote, developer)
    record_ref_updates(remote)
    staging_before = remote.head("staging")
    served.cut_next_push()

    job = services.promote(promotion, actor=release_manager)
    [job] = [j for j in run_jobs() if j.pk == job.pk]

    assert served.cuts == 1
    [push] = push_steps(job)
    assert push.exit_code != 0  # the pusher saw an error
    assert job.state == JobState.SUCCEEDED, job.message
    assert f"is on staging as {promotion.merge_sha[:10]}" in job.message
    # It read the remote's refs after the failed push, and did not push again.
    reads = JobStep.objects.filter(job_id=job.pk, seq__gt=push.seq, command__contains="ls-remote")
    assert reads.exists()
    assert_promoted_once(promotion, remote, staging_before)


def test_a_push_that_lands_before_the_remote_goes_dark_is_settled_by_the_next_sync(
    served, repository, remote, developer, release_manager
):
    promotion = ready_promotion(repository, remote, developer)
    record_ref_updates(remote)
    staging_before = remote.head("staging")
    served.cut_next_push(go_dark=True)

    job = services.promote(promotion, actor=release_manager)
    [job] = [j for j in run_jobs() if j.pk == job.pk]

    assert served.cuts == 1
    assert job.state == JobState.FAILED and job.reason == JobReason.GIT_ERROR
    assert "settled by the next sync" in job.message and "nothing is pushed again blindly" in job.message
    assert remote.head("staging") == promotion.merge_sha  # it did land
    promotion.refresh_from_db()
    assert promotion.state != PromotionState.PROMOTED

    served.back_online()
    sync = services.refresh(repository, actor=developer)
    run_jobs()
    sync.refresh_from_db()
    assert sync.state == JobState.SUCCEEDED, sync.message
    assert push_steps(sync) == []
    assert AuditEvent.objects.filter(action="promotion.reconciled", object_id=promotion.pk).count() == 1
    assert len(push_steps(job)) == 1
    assert_promoted_once(promotion, remote, staging_before)


# == 10. a message delivered more than once ====================================================


def test_a_job_published_several_times_to_two_workers_is_claimed_and_run_once(procs, repository, developer):
    synced(repository, developer)
    workers = [procs.worker("w1"), procs.worker("w2")]

    # The publish on commit, then three more copies of the same message at once: four
    # deliveries race for one job across two workers with two pool processes each.
    with transaction.atomic():
        job = services.refresh(repository, actor=developer)
        for _ in range(3):
            transaction.on_commit(lambda: run_job.apply_async(args=(job.pk,), queue=job.queue))
    job = wait_for_job(job, timeout=60)
    # A duplicate also goes through publish(), which sends only while the job is queued.
    assert publish(job.pk) is False

    def not_claimed() -> int:
        return sum(w.log_path.read_text().count(f"job {job.pk} not claimed") for w in workers)

    wait_for(
        lambda: not_claimed() >= 3 or events(job, "job.started") > 1,
        timeout=30,
        what="all four deliveries to be handled",
    )
    job.refresh_from_db()
    assert events(job, "job.started") == 1
    assert job.attempt == 1
    assert not_claimed() == 3
    assert job.state == JobState.SUCCEEDED, job.message
    assert events(job, "job.succeeded") == 1
    steps = list(JobStep.objects.filter(job_id=job.pk).order_by("seq"))
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))
    assert len([s for s in steps if " fetch " in f" {s.command} "]) == 1
    assert log_text(job).count(f"== Fetch {repository.remote_url} ==") == 1


# == 11. a job that crashes its worker every time ==============================================


def test_a_job_that_kills_its_worker_every_time_fails_after_the_capped_attempts_and_staging_is_untouched(
    procs, repository, remote, developer, release_manager
):
    promotion = ready_promotion(repository, remote, developer)
    record_ref_updates(remote)
    staging_before = remote.head("staging")
    faults = procs.fault_dir()
    (faults / "before_push.crash").touch()
    procs.worker("w1", faults=faults)
    procs.beat()

    job = services.promote(promotion, actor=release_manager)
    assert job.max_attempts == settings.JOB_MAX_ATTEMPTS
    job = wait_for_job(job, timeout=settings.JOB_MAX_ATTEMPTS * (LEASE + 10) + 30)

    assert job.state == JobState.FAILED
    assert job.reason == JobReason.TOO_MANY_ATTEMPTS
    assert job.attempt == job.max_attempts == settings.JOB_MAX_ATTEMPTS
    assert f"stopped answering {job.max_attempts} times" in job.message and "gave up" in job.message
    assert events(job, "job.started") == settings.JOB_MAX_ATTEMPTS
    assert events(job, "job.requeued") == settings.JOB_MAX_ATTEMPTS - 1
    assert events(job, "job.failed") == 1
    assert push_steps(job) == []
    assert remote.head("staging") == staging_before and reflog(remote, "staging") == []
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.FAILED


# == 12. Redis down when a user clicks; a lost message =========================================


class PrivateRedis:
    """A redis-server of this test's own, on a free port in a temp dir: it may be stopped
    and emptied without touching anybody else's Redis."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.exceptions.ConnectionError:
            return False

    def start(self) -> None:
        argv = [str(REDIS_SERVER), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        log = open(self.root / "redis.log", "ab")  # noqa: SIM115  (the server keeps writing to it)
        self.proc = subprocess.Popen([*argv, "--dir", str(self.root)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self.ping, timeout=30, what="the test's Redis to answer")

    def stop(self) -> None:
        """Stop it the hard way (SIGKILL), as a crashed or unplugged broker would go."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def flush(self) -> None:
        redis.Redis(host="127.0.0.1", port=self.port).flushdb()  # the test's own server


@pytest.fixture
def private_broker(tmp_path: Path, procs: Processes) -> Iterator[PrivateRedis]:
    """This process and every celery process the test starts use a Redis of the test's own."""
    if not REDIS_SERVER.exists():
        if os.environ.get("RELEASEBOARD_REQUIRE_SERVICES") == "1":
            pytest.fail(f"RELEASEBOARD_REQUIRE_SERVICES=1 and {REDIS_SERVER} is missing (apt-get install redis-server)")
        pytest.skip(f"{REDIS_SERVER} is missing (apt-get install redis-server)")
    server = PrivateRedis(tmp_path / "redis")
    saved = (celery_app.conf.broker_url, celery_app.conf.broker_transport_options)
    saved_env = os.environ.get("CELERY_BROKER_URL")
    # Celery reads CELERY_BROKER_URL from the environment before its own setting.
    os.environ["CELERY_BROKER_URL"] = server.url
    use_broker(server.url, {"visibility_timeout": 3600})
    assert f":{server.port}/" in celery_app.connection_for_write().as_uri()
    procs.env = {"CELERY_BROKER_URL": server.url, "RELEASEBOARD_BROKER_PREFIX": ""}
    try:
        yield server
    finally:
        procs.stop_all()  # while their broker is still there: a worker without one is slow to stop
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env
        use_broker(*saved)
        assert f":{server.port}/" not in celery_app.connection_for_write().as_uri()
        server.stop()


def use_broker(url: str, options: dict[str, object]) -> None:
    """Point this process's Celery app at another broker.

    The app's pools are looked up again by connection; kombu keeps one per broker, so the
    session broker's own pool (not closed here) is found again when the test switches back.
    """
    celery_app._pool = None  # type: ignore[attr-defined]
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]
    celery_app.conf.update(broker_url=url, broker_transport_options=options)


def test_refresh_clicked_while_redis_is_down_answers_at_once_and_runs_once_redis_is_back(
    private_broker, procs, client, repository, developer
):
    client.force_login(developer)
    key = str(uuid.uuid4())
    private_broker.stop()
    started = time.monotonic()
    response = client.post(
        reverse("web:repository_refresh", kwargs={"repo": repository.name}), {"idempotency_key": key}
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 302, response.content[:500]
    assert response.url == reverse("web:board", kwargs={"repo": repository.name})
    assert elapsed < 10, f"the click took {elapsed:.1f} s with Redis down"
    job = Job.objects.get(idempotency_key=key)
    assert job.state == JobState.QUEUED and job.published_at is None
    page = job_page(client, job)
    assert "waiting for a worker" in page
    assert "not yet handed to the broker" in page

    private_broker.start()
    procs.worker("w1")
    procs.beat()
    job = wait_for_job(job, timeout=60)
    assert job.state == JobState.SUCCEEDED, job.message
    assert job.attempt == 1
    assert events(job, "job.started") == 1
    assert events(job, "job.succeeded") == 1


def test_a_queued_job_whose_message_was_lost_runs_once_when_workers_start(private_broker, procs, repository, developer):
    synced(repository, developer)
    job = services.refresh(repository, actor=developer)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.published_at is not None
    assert redis.Redis(port=private_broker.port).llen("git") >= 1  # its message (and those of the jobs run above)
    private_broker.flush()  # the message is lost

    procs.worker("w1")
    procs.beat()
    job = wait_for_job(job, timeout=60)

    assert job.state == JobState.SUCCEEDED, job.message
    assert job.attempt == 1
    assert events(job, "job.started") == 1
    assert events(job, "job.succeeded") == 1


# == 13. a worker whose lease expired can neither push nor write a final state ==================


def test_a_worker_frozen_past_its_lease_neither_pushes_nor_overwrites_the_result_when_it_wakes(
    procs, repository, remote, developer, release_manager
):
    promotion = ready_promotion(repository, remote, developer)
    record_ref_updates(remote)
    staging_before = remote.head("staging")
    faults_a = procs.fault_dir("faults-a")
    (faults_a / "before_push.pause").touch()
    # One pool process: while it holds the job, A asks the broker for nothing more.
    worker_a = procs.worker("a", concurrency=1, faults=faults_a)

    job = services.promote(promotion, actor=release_manager)
    reached(faults_a, "before_push", job)
    os.killpg(worker_a.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        procs.worker("b")  # no fault dir: B runs straight through
        procs.beat()
        job = wait_for_job(job, timeout=LEASE + 50)
        assert time.monotonic() - frozen_at >= LEASE - 1
        assert job.state == JobState.SUCCEEDED, job.message
        assert job.attempt == 2
        settled = (
            Job.objects.filter(pk=job.pk)
            .values("state", "reason", "message", "worker", "finished_at", "attempt", "lease_token")
            .get()
        )
        assert len(reflog(remote, "staging")) == 1
        # A wakes up at the very point it was about to push.
        (faults_a / "before_push.pause").unlink()
    finally:
        os.killpg(worker_a.pid, signal.SIGCONT)
    lost = f"job {job.pk} lost its lease"
    wait_for(lambda: lost in worker_a.log_path.read_text(), timeout=30, what="worker A to notice it lost the job")
    # A runs one task at a time: the first run_job task to end after that line is this
    # one. Once it has returned, A holds nothing of the job that it could still write.
    wait_for(
        lambda: re.search(r"run_job\[[^]]+\] succeeded", worker_a.log_path.read_text().split(lost, 1)[1]),
        timeout=30,
        what="worker A's task to return",
    )

    assert Job.objects.filter(pk=job.pk).values(*settled).get() == settled
    assert events(job, "job.succeeded") == 1
    assert events(job, "job.started") == 2
    assert len(push_steps(job)) == 1
    assert_promoted_once(promotion, remote, staging_before)


# == 14. one writer per repository at a time, across processes =================================


def test_a_second_job_on_the_same_repository_waits_for_the_first_while_another_repository_proceeds(
    procs, tmp_path, repository, remote, developer
):
    remote2 = Remote(tmp_path / "git2")
    repository2 = Repository.objects.create(
        name="tools", remote_url=remote2.url, test_command=TEST_COMMAND, test_timeout=60
    )
    synced(repository, developer)
    synced(repository2, developer)
    faults = procs.fault_dir()
    (faults / "before_push.pause").touch()
    worker_1 = procs.worker("w1", concurrency=1, faults=faults)

    first = services.request_branch(repository, actor=developer, kind="feature", name="one", purpose="x")
    first_job = Job.objects.get(kind="create_branch", subject_id=first.pk)
    pid_1 = reached(faults, "before_push", first_job)
    assert parent_pid(pid_1) == worker_1.pid

    procs.worker("w2", concurrency=2)  # a second process; no fault points armed
    second = services.request_branch(repository, actor=developer, kind="feature", name="two", purpose="x")
    second_job = Job.objects.get(kind="create_branch", subject_id=second.pk)
    # It waits in the queue, not in a worker: the lease is looked at before the job is claimed.
    waiting = f"Waiting for repository:{repository.pk}"
    wait_for(lambda: waiting in Job.objects.get(pk=second_job.pk).message, timeout=30, what="the second job to wait")

    other = services.request_branch(repository2, actor=developer, kind="feature", name="other", purpose="x")
    other_job = wait_for_job(Job.objects.get(kind="create_branch", subject_id=other.pk), timeout=30)
    assert other_job.state == JobState.SUCCEEDED, other_job.message
    assert remote2.exists("refs/heads/feature/other")

    # Meanwhile the first is still paused before its push, and the second still waits.
    first_job.refresh_from_db()
    second_job.refresh_from_db()
    assert first_job.state == JobState.RUNNING and second_job.state == JobState.QUEUED
    assert not remote.exists("refs/heads/feature/one") and not remote.exists("refs/heads/feature/two")
    assert push_steps(second_job) == []
    assert Lease.objects.get(key=repository.lock_key).holder_job_id == first_job.pk

    (faults / "before_push.pause").unlink()
    first_job = wait_for_job(first_job, timeout=30)
    second_job = wait_for_job(second_job, timeout=30)

    assert first_job.state == second_job.state == JobState.SUCCEEDED, (first_job.message, second_job.message)
    assert remote.exists("refs/heads/feature/one") and remote.exists("refs/heads/feature/two")
    [first_push], [second_push] = push_steps(first_job), push_steps(second_job)
    assert first_push.finished_at is not None and first_push.finished_at <= second_push.started_at
    assert Lease.objects.get(key=repository.lock_key).holder_token == ""


def test_a_held_repository_lease_cannot_be_taken_until_it_expires(settings):
    settings.JOB_LEASE_SECONDS = 1
    key, holder, other = "repository:424242", uuid.uuid4().hex, uuid.uuid4().hex

    assert execution._try_acquire(key, 1, holder)
    assert not execution._try_acquire(key, 2, other)
    assert execution._try_acquire(key, 1, holder)  # the holder renews it
    lease = Lease.objects.get(key=key)
    assert (lease.holder_job_id, lease.holder_token) == (1, holder)

    expires_at = lease.expires_at
    assert expires_at is not None
    wait_for(lambda: timezone.now() > expires_at, timeout=5, what="the lease to expire")
    assert execution._try_acquire(key, 2, other)
    assert not execution._try_acquire(key, 1, holder)  # and the old holder cannot take it back
    lease.refresh_from_db()
    assert (lease.holder_job_id, lease.holder_token) == (2, other)


# == 15. stale jobs are reaped by beat ========================================================


def test_a_killed_workers_running_job_shows_its_heartbeat_age_and_is_requeued_by_beat(
    procs, client, repository, developer, gate
):
    synced(repository, developer)
    repository.test_command = gated_command(gate)
    repository.save()
    client.force_login(developer)
    worker = procs.worker("w1")
    job = services.test_staging(repository, actor=developer)
    wait_for(lambda: "started" in log_text(job), timeout=60, what="the test command to start")

    job.refresh_from_db()
    page = job_page(client, job)
    age = heartbeat_age(page)
    assert age is not None and age <= 3, page
    assert f'from <span class="mono">{job.worker}</span>' in page

    kill_group(worker)
    wait_for(
        lambda: (heartbeat_age(job_page(client, job)) or 0) >= 4,
        timeout=15,
        what="the page to show the heartbeat going stale",
    )
    job.refresh_from_db()
    assert job.state == JobState.RUNNING  # nothing has reaped it yet: no beat runs

    procs.git_queue_worker("reaper")  # runs the reaper; does not consume the tests queue
    procs.beat()
    wait_for(
        lambda: Job.objects.get(pk=job.pk).state == JobState.QUEUED,
        timeout=LEASE + 20,
        what="beat's reaper to requeue the job",
    )

    job.refresh_from_db()
    assert job.attempt == 1 and job.lease_token == "" and job.finished_at is None
    assert "stopped answering (attempt 1)" in job.message
    assert events(job, "job.requeued") == 1
    wait_for(
        lambda: Job.objects.get(pk=job.pk).published_at is not None,
        timeout=20,
        what="the requeued job to be published again",
    )
    page = job_page(client, job)
    assert "waiting for a worker" in page and heartbeat_age(page) is None


def test_a_killed_workers_job_on_its_last_attempt_is_failed_by_beat_not_left_running(
    procs, client, repository, developer, gate
):
    synced(repository, developer)
    repository.test_command = gated_command(gate)
    repository.save()
    client.force_login(developer)
    job = services.test_staging(repository, actor=developer)
    # As if two workers had died on it already: the next claim is its last attempt.
    Job.objects.filter(pk=job.pk).update(attempt=F("max_attempts") - 1)
    worker = procs.worker("w1")
    wait_for(lambda: "started" in log_text(job), timeout=60, what="the test command to start")
    job.refresh_from_db()
    assert job.attempt == job.max_attempts

    kill_group(worker)
    procs.git_queue_worker("reaper")
    procs.beat()
    job = wait_for_job(job, timeout=LEASE + 20)

    assert job.state == JobState.FAILED
    assert job.reason == JobReason.TOO_MANY_ATTEMPTS
    assert job.finished_at is not None and job.lease_expires_at is None
    assert events(job, "job.failed") == 1
    assert events(job, "job.requeued") == 0
    page = job_page(client, job)
    assert "Too many attempts" in page and heartbeat_age(page) is None
