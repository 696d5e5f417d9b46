"""A test command dies with the process that runs it (issue 14, item 2).

Real processes and a real SIGKILL: the process that called sandbox.run (a plain Python
process, a Celery pool process, a whole Celery worker) is killed, and the command with
every process it started (a background child, a child that left with setsid) is gone
within a couple of seconds. The job's retry runs in a worktree of its own.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.utils import timezone

from releaseboard.jobs import reaper
from releaseboard.jobs.models import Job, JobState
from releaseboard.releases import services
from releaseboard.releases.models import Branch
from tests.conftest import ROOT, WorkerProcess, _test_database_url, run_jobs, wait_for
from tests.flows import sync

GONE_SECONDS = 3


def long_test_command(folder: Path) -> str:
    """A test command that records its directory and pids, starts a background child and
    one that leaves the session (setsid), and runs for two minutes."""
    script = (
        f"pwd >> {folder}/dirs; echo $$ >> {folder}/pids; "
        f"sleep 120 & echo $! >> {folder}/pids; "
        f"setsid sh -c 'echo $$ >> {folder}/pids; exec sleep 120' & "
        "wait"
    )
    return f"sh -c {shlex.quote(script)}"


def pids_in(folder: Path, count: int) -> list[int]:
    wait_for(
        lambda: len((folder / "pids").read_text().split()) >= count if (folder / "pids").exists() else False,
        timeout=60,
        what=f"{count} pids from the test command",
    )
    return [int(p) for p in (folder / "pids").read_text().split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left to collect


def wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + GONE_SECONDS
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    assert [p for p in pids if alive(p)] == [], f"still running {GONE_SECONDS} s after their owner died"


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def test_a_command_dies_with_the_process_that_runs_it_even_by_sigkill(tmp_path):
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from pathlib import Path\n"
            "from releaseboard.sandbox.runner import run, split_command, minimal_env\n"
            f"run(split_command({long_test_command(tmp_path)!r}), cwd=Path({str(tmp_path)!r}),"
            f" env=minimal_env(Path({str(tmp_path)!r})), timeout=300, on_output=lambda text: None)\n",
        ],
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        pids = pids_in(tmp_path, 3)
        assert all(alive(p) for p in pids)

        os.kill(owner.pid, signal.SIGKILL)

        wait_gone(pids)
    finally:
        owner.kill()
        owner.wait()


@pytest.fixture
def long_promotion_test(repository, remote, developer, tmp_path):
    """A promotion whose test job (queued, not yet run) runs long_test_command."""
    sync(repository, developer)
    branch = services.request_branch(repository, actor=developer, kind="feature", name="slow", purpose="work")
    run_jobs()
    remote.commit_on(branch.name, {"slow.py": "S = 1\n"}, "Slow work")
    sync(repository, developer)
    folder = tmp_path / "run"
    folder.mkdir()
    repository.test_command = long_test_command(folder)
    repository.save()
    services.request_promotion(Branch.objects.get(pk=branch.pk), actor=developer, title="Slow")
    return folder, Job.objects.get(kind="test_promotion", state=JobState.QUEUED)


def _stop(worker: WorkerProcess, job: Job) -> None:
    Job.objects.filter(pk=job.pk, state=JobState.RUNNING).update(cancel_requested_at=timezone.now())
    worker.stop()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_killed_pool_process_takes_its_test_along_and_the_retry_uses_another_worktree(long_promotion_test, tmp_path):
    folder, job = long_promotion_test
    worker = WorkerProcess(tmp_path / "worker.log", name="killed-pool")
    try:
        first = pids_in(folder, 3)
        pool = first[0]
        while ppid(pool) != worker.pid:  # up from the test command to the worker's pool process
            pool = ppid(pool)

        os.kill(pool, signal.SIGKILL)

        wait_gone(first)
        # The lease runs out; the reaper queues the job again and the worker runs it.
        wait_for(lambda: reaper.reap()["requeued"] == 1, timeout=60, what="the reaper to queue the job again")
        second = pids_in(folder, 6)[3:]
        job.refresh_from_db()
        assert job.attempt == 2 and job.state == JobState.RUNNING
        dirs = (folder / "dirs").read_text().split()
        assert len(dirs) == 2 and dirs[0] != dirs[1], dirs
        assert all(alive(p) for p in second)
    finally:
        _stop(worker, job)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_takes_its_test_along(long_promotion_test, tmp_path):
    folder, job = long_promotion_test
    worker = WorkerProcess(tmp_path / "worker.log", name="killed-whole")
    try:
        pids = pids_in(folder, 3)

        os.killpg(worker.pid, signal.SIGKILL)  # the main process and its pool, as a crash or an OOM kill would

        wait_gone(pids)
    finally:
        _stop(worker, job)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_on_make_run_stops_a_running_test(long_promotion_test, tmp_path):
    """scripts/run.py (what `make run` starts) on the test database and broker: Ctrl-C
    (SIGINT) while a job runs a test stops the test too, not only web, worker and beat."""
    folder, job = long_promotion_test
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "NO_COLOR": "1"}
    with open(tmp_path / "run.log", "w") as log:
        run = subprocess.Popen(
            [sys.executable, "scripts/run.py", "--no-demo", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        pids = pids_in(folder, 3)

        run.send_signal(signal.SIGINT)

        # run.py gives the worker its grace period to finish, then kills it; the test dies with it.
        run.wait(timeout=60)
        wait_gone(pids)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        Job.objects.filter(pk=job.pk, state=JobState.RUNNING).update(cancel_requested_at=timezone.now())
