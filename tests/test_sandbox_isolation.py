"""A repository's test command cannot outlive its run, fake a pass, or read the worker's
secrets: each attack is tried with real processes and shown to fail safely."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from releaseboard.jobs.models import JobLogLine, JobState
from releaseboard.releases import services
from releaseboard.sandbox import Outcome, minimal_env
from releaseboard.sandbox.processes import PR_GET_CHILD_SUBREAPER, _prctl, snapshot
from tests.conftest import run_jobs
from tests.test_sandbox import is_running, read_pid, run_collecting, wait_until_gone

PY = sys.executable

# The test command starts a daemon in a session of its own, which the process group
# kill cannot reach, writes its pid, then (argv[2]) waits or exits at once.
SETSID_DAEMON = (
    "import subprocess, sys, time\n"
    "daemon = subprocess.Popen(['setsid', 'sleep', '300'])\n"
    "open(sys.argv[1], 'w').write(str(daemon.pid))\n"
    "print('daemon started', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)

# The classic double fork: the middle process exits, the daemon is orphaned at once. The
# command waits until the daemon has written its pid (renamed into place, so never read
# half-written): else a command that exits at once could be swept, daemon and all, before
# the daemon wrote it, and the test could not tell which process to look for.
DOUBLE_FORK = (
    "import os, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
    "        os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "        os.execvp('sleep', ['sleep', '300'])\n"
    "    os._exit(0)\n"
    "while not os.path.exists(sys.argv[1]):\n"
    "    time.sleep(0.01)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


def marked_env(cwd: Path) -> tuple[dict[str, str], str]:
    """The run's environment with a marker of this test (other test sessions may run
    sandboxes on this machine at the same time)."""
    marker = uuid.uuid4().hex
    return {**minimal_env(cwd), "ISOLATION_TEST": marker}, marker


def leftovers(marker: str) -> list[int]:
    """Processes of this test's run still alive, zombies included (by pid, then by marker)."""
    found = []
    for pid in snapshot():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"ISOLATION_TEST={marker}".encode() in environ.split(b"\0"):
            found.append(pid)
    return found


def my_zombies() -> set[int]:
    return {p.pid for p in snapshot().values() if p.ppid == os.getpid() and p.state == "Z"}


@pytest.mark.parametrize("script", [SETSID_DAEMON, DOUBLE_FORK], ids=["setsid", "double-fork"])
@pytest.mark.parametrize("ending", ["timeout", "cancel", "normal exit"])
def test_a_daemon_that_left_the_session_dies_with_the_run(tmp_path, script, ending):
    pid_file = tmp_path / "daemon.pid"
    zombies_before = my_zombies()
    env, marker = marked_env(tmp_path)
    if ending == "timeout":
        result, _ = run_collecting([PY, "-c", script, str(pid_file), "60"], tmp_path, timeout=1.5, env=env)
        assert result.outcome is Outcome.TIMED_OUT
    elif ending == "cancel":
        result, _ = run_collecting(
            [PY, "-c", script, str(pid_file), "60"],
            tmp_path,
            timeout=30,
            env=env,
            should_cancel=lambda: pid_file.exists() and pid_file.read_text() != "",
        )
        assert result.outcome is Outcome.CANCELLED
    else:
        result, _ = run_collecting([PY, "-c", script, str(pid_file), "0"], tmp_path, env=env)
        assert result.outcome is Outcome.PASSED
    daemon = read_pid(pid_file)
    # Gone at once, not "some time later": killed and reaped before run() returned.
    assert not Path(f"/proc/{daemon}").exists(), "the daemon outlived the run"
    assert leftovers(marker) == []
    assert my_zombies() <= zombies_before, "run() left zombies behind"


def test_a_daemon_started_late_in_a_fast_command_is_found_by_its_token(tmp_path):
    # Spawned and orphaned between two polls: never seen in the tree, found by the token.
    pid_file = tmp_path / "daemon.pid"
    code = "import subprocess, sys\nopen(sys.argv[1], 'w').write(str(subprocess.Popen(['setsid', 'sleep', '300']).pid))"
    result, _ = run_collecting([PY, "-c", code, str(pid_file)], tmp_path)
    assert result.passed
    assert not Path(f"/proc/{read_pid(pid_file)}").exists()


def test_the_runner_is_a_subreaper_only_while_a_command_runs(tmp_path):
    flag = ctypes.c_int(-1)
    assert _prctl(PR_GET_CHILD_SUBREAPER, ctypes.pointer(flag)) and flag.value == 0
    seen = []

    def should_cancel() -> bool:
        inner = ctypes.c_int(-1)
        _prctl(PR_GET_CHILD_SUBREAPER, ctypes.pointer(inner))
        seen.append(inner.value)
        return False

    result, _ = run_collecting([PY, "-c", "import time; time.sleep(0.5)"], tmp_path, should_cancel=should_cancel)
    assert result.passed and seen and set(seen) == {1}
    assert _prctl(PR_GET_CHILD_SUBREAPER, ctypes.pointer(flag)) and flag.value == 0


def test_the_workers_own_children_keep_their_exit_status(tmp_path):
    # Another thread's git command is a child of the worker too: the sweep must neither
    # kill nor reap it, or its Popen would read exit status 0 for a failure.
    other = subprocess.Popen(["sh", "-c", "sleep 1; exit 7"])
    result, _ = run_collecting(["sh", "-c", "setsid sleep 300 & echo started"], tmp_path)
    assert result.passed
    assert is_running(other.pid)
    assert other.wait(timeout=10) == 7


def test_a_server_left_running_by_a_passing_suite_is_killed_in_its_own_session(tmp_path):
    pid_file = tmp_path / "server.pid"
    code = (
        "import subprocess, sys\n"
        "server = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "open(sys.argv[1], 'w').write(str(server.pid))\nprint('1 passed')\n"
    )
    result, chunks = run_collecting([PY, "-c", code, str(pid_file)], tmp_path)
    assert result.passed and "1 passed" in "".join(chunks)
    assert wait_until_gone(read_pid(pid_file), seconds=0.5)


# -- output cap ------------------------------------------------------------------------------------


def test_pass_lines_printed_after_the_cap_cannot_turn_a_failure_into_a_pass(tmp_path):
    code = (
        "import sys\n"
        "sys.stdout.write('FAIL: test_add\\n' + 'x' * 20000 + '\\n')\n"
        "print('OK'); print('===== 12 passed in 0.1s ====='); print('Ran 12 tests\\n\\nOK')\n"
        "sys.stdout.flush(); sys.exit(1)\n"
    )
    result, chunks = run_collecting([PY, "-c", code], tmp_path, output_cap=4096)
    text = "".join(chunks)
    assert result.outcome is Outcome.FAILED and not result.passed and result.exit_code == 1
    assert result.truncated and "truncated" in text
    assert "passed in" not in text and "\nOK" not in text
    assert text.startswith("FAIL: test_add")


# -- environment -----------------------------------------------------------------------------------

ENV_DUMP = "python3 -c 'import os,json; print(json.dumps(dict(os.environ)))'"


def test_a_test_job_sees_none_of_the_workers_secrets(
    transactional_db, repository, developer, tmp_path, monkeypatch, settings
):
    planted = {
        "DATABASE_URL": "postgres://rb:db-pw-4411@db/rb",
        "CELERY_BROKER_URL": "redis://:broker-pw-4411@redis:6379/0",
        "REDIS_URL": "redis://:redis-pw-4411@redis:6379/1",
        "RELEASEBOARD_SECRET_KEY": "sk-4411-" + "k" * 50,
        "RELEASEBOARD_CREDENTIALS_FILE": str(tmp_path / "creds-4411.json"),
        "AWS_SECRET_ACCESS_KEY": "aws-4411",
    }
    repository.test_command = ENV_DUMP
    repository.save()
    # Queued (and published) before the worker's environment is planted: Celery reads
    # CELERY_BROKER_URL from the environment and would keep the planted broker for the
    # rest of the session.
    services.test_staging(repository, actor=developer)
    for name, value in planted.items():
        monkeypatch.setenv(name, value)
    jobs = run_jobs(kind="test_staging")
    assert jobs and jobs[-1].state == JobState.SUCCEEDED, [(j.kind, j.message) for j in jobs]
    log = "".join(JobLogLine.objects.filter(job=jobs[-1]).order_by("seq").values_list("text", flat=True))
    dumped = json.loads(next(line for line in log.splitlines() if line.startswith("{")))
    # The one variable Releaseboard gives a test command on purpose: where to write JUnit XML.
    given = {"RELEASEBOARD_JUNIT_XML"}
    leaked_names = [
        n
        for n in dumped
        if n not in given and (n.startswith(("RELEASEBOARD_", "DJANGO", "DATABASE", "CELERY", "REDIS")) or n in planted)
    ]
    assert leaked_names == []
    for value in [*planted.values(), django_settings.SECRET_KEY, "4411"]:
        assert value not in log
    # Its own HOME and TMPDIR, removed when the job ended.
    home = Path(dumped["HOME"])
    assert Path(dumped["TMPDIR"]).parent == home and home.name == f"{jobs[-1].pk}-{jobs[-1].attempt}"
    assert not home.exists()


def test_what_a_test_run_leaves_in_its_home_does_not_reach_the_next_job(transactional_db, repository, developer):
    repository.test_command = (
        "python3 -c \"import os,pathlib; h=pathlib.Path(os.environ['HOME']); "
        "print('found' if (h/'.planted').exists() else 'clean'); (h/'.planted').write_text('x')\""
    )
    repository.save()
    logs = []
    for _ in range(2):
        services.test_staging(repository, actor=developer)
        job = run_jobs(kind="test_staging")[-1]
        assert job.state == JobState.SUCCEEDED, job.message
        logs.append("".join(JobLogLine.objects.filter(job=job).values_list("text", flat=True)))
    # Whole output lines: the logged command line itself contains both words.
    assert all("clean" in log.splitlines() and "found" not in log.splitlines() for log in logs)
