"""Running a repository's build and test commands: real processes, no mocks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from releaseboard.sandbox import CommandResult, Outcome, minimal_env, run, split_command
from releaseboard.sandbox.supervisor import raw_sigaction

PY = sys.executable


def run_collecting(argv: list[str], cwd: Path, **kwargs: object) -> tuple[CommandResult, list[str]]:
    chunks: list[str] = []
    kwargs.setdefault("env", minimal_env(cwd))
    kwargs.setdefault("timeout", 20)
    result = run(argv, cwd=cwd, on_output=chunks.append, **kwargs)  # type: ignore[arg-type]
    return result, chunks


def python(code: str) -> list[str]:
    return [PY, "-c", code]


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait a moment to be reaped by init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until_gone(pid: int, seconds: float = 3) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not is_running(pid):
            return True
        time.sleep(0.05)
    return False


def read_pid(path: Path, seconds: float = 5) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.strip():
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


# -- passing and failing ------------------------------------------------------------------------


def test_a_passing_command_passes_with_its_output(tmp_path):
    result, chunks = run_collecting(python("print('all 3 tests ok')"), tmp_path)
    assert result.outcome is Outcome.PASSED and result.passed
    assert result.exit_code == 0
    assert "".join(chunks) == "all 3 tests ok\n"
    assert result.output_bytes == len("all 3 tests ok\n")
    assert not result.truncated
    assert result.message == "exit code 0"


def test_a_failing_command_fails_with_its_exit_code(tmp_path):
    result, chunks = run_collecting(python("import sys; print('1 failed'); sys.exit(3)"), tmp_path)
    assert result.outcome is Outcome.FAILED and not result.passed
    assert result.exit_code == 3
    assert result.message == "exit code 3"
    assert "1 failed" in "".join(chunks)


def test_stderr_is_streamed_with_stdout(tmp_path):
    code = "import sys; print('out', flush=True); print('err', file=sys.stderr, flush=True)"
    result, chunks = run_collecting(python(code), tmp_path)
    assert result.passed
    assert "".join(chunks) == "out\nerr\n"


def test_the_command_runs_in_the_given_directory_and_reads_no_stdin(tmp_path):
    (tmp_path / "marker.txt").write_text("here\n")
    result, chunks = run_collecting(
        python("import sys; print(open('marker.txt').read(), sys.stdin.read() == '')"), tmp_path
    )
    assert result.passed
    assert "".join(chunks) == "here\n True\n"


def test_a_command_killed_by_a_signal_fails(tmp_path):
    result, _ = run_collecting(python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), tmp_path)
    assert result.outcome is Outcome.FAILED
    assert result.exit_code == -9


# -- timeouts and cancelling kill the whole group ---------------------------------------------------


GRANDCHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen(['sleep', '60'])\n"
    "open(sys.argv[1], 'w').write(str(child.pid))\n"
    "print('started', flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_timeout_kills_the_whole_process_group_with_the_grandchild(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    result, chunks = run_collecting([PY, "-c", GRANDCHILD, str(pid_file)], tmp_path, timeout=1)
    assert result.outcome is Outcome.TIMED_OUT and not result.passed
    assert result.exit_code is None
    assert "timed out" in result.message and "killed" in result.message
    assert time.monotonic() - started < 10
    assert "started" in "".join(chunks)
    assert wait_until_gone(read_pid(pid_file)), "the grandchild outlived the timeout"


def test_a_shell_grandchild_holding_the_output_pipe_is_killed_on_timeout(tmp_path):
    pid_file = tmp_path / "sleep.pid"
    result, _ = run_collecting(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], tmp_path, timeout=1)
    assert result.outcome is Outcome.TIMED_OUT
    assert wait_until_gone(read_pid(pid_file))


def test_a_background_process_left_by_a_passing_command_is_killed(tmp_path):
    # A test suite that starts a server and forgets it: the server dies with the run.
    pid_file = tmp_path / "server.pid"
    started = time.monotonic()
    result, _ = run_collecting(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; echo done"], tmp_path)
    assert result.passed
    assert time.monotonic() - started < 10
    assert wait_until_gone(read_pid(pid_file))


def test_cancelling_kills_the_command_and_says_so(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    asked = []

    def should_cancel() -> bool:
        asked.append(1)
        return pid_file.exists() and pid_file.read_text() != ""

    started = time.monotonic()
    result, _ = run_collecting([PY, "-c", GRANDCHILD, str(pid_file)], tmp_path, timeout=30, should_cancel=should_cancel)
    assert result.outcome is Outcome.CANCELLED and not result.passed
    assert result.exit_code is None
    assert "cancelled" in result.message
    assert asked
    assert time.monotonic() - started < 10
    assert wait_until_gone(read_pid(pid_file))


def test_a_command_that_finishes_is_not_reported_cancelled(tmp_path):
    result, _ = run_collecting(python("print('quick')"), tmp_path, should_cancel=lambda: False)
    assert result.passed


# -- output ---------------------------------------------------------------------------------------------


def test_output_past_the_cap_is_dropped_and_marked(tmp_path):
    result, chunks = run_collecting(
        python("import sys; sys.stdout.write('x' * 1_000_000)"), tmp_path, output_cap=10_000
    )
    text = "".join(chunks)
    assert result.passed
    assert result.truncated
    assert result.output_bytes == 10_000
    assert text.partition("\n")[0] == "x" * 10_000
    assert "[output truncated at 10000 bytes; the exit code still decides the result]" in text


def test_a_failing_command_with_huge_output_still_fails(tmp_path):
    code = "import sys; sys.stdout.write('PASSED ' * 500_000); sys.stdout.flush(); sys.exit(1)"
    result, _ = run_collecting(python(code), tmp_path, output_cap=4096)
    assert result.truncated
    assert result.outcome is Outcome.FAILED and not result.passed
    assert result.exit_code == 1


def test_a_command_that_writes_past_the_cap_is_not_blocked_on_a_full_pipe(tmp_path):
    # The run keeps reading (and dropping) output, so the command can finish.
    code = "import sys\nfor _ in range(200):\n    sys.stdout.write('y' * 65536)\nprint('end')"
    started = time.monotonic()
    result, _ = run_collecting(python(code), tmp_path, output_cap=1000, timeout=20)
    assert result.passed
    assert time.monotonic() - started < 15


def test_output_under_the_cap_is_complete_and_unmarked(tmp_path):
    code = "import sys\nfor i in range(2000):\n    print(i)"
    result, chunks = run_collecting(python(code), tmp_path, output_cap=1_000_000)
    assert not result.truncated
    assert "".join(chunks) == "".join(f"{i}\n" for i in range(2000))


SPLIT_WRITES = (
    "import os, sys, time\nfor part in sys.argv[1:]:\n    os.write(1, bytes.fromhex(part))\n    time.sleep(0.25)\n"
)


@pytest.mark.parametrize(
    ("text", "cut_at"),
    [
        ("é", [1]),  # 2 bytes, split 1 + 1
        ("€", [2]),  # 3 bytes, split 2 + 1
        ("€", [1]),  # 3 bytes, split 1 + 2
        ("🚀", [1, 2, 3]),  # 4 bytes, one at a time
        ("done ✓ ok", [6]),  # split inside the check mark
    ],
)
def test_utf8_split_across_chunks_is_decoded_whole(tmp_path, text, cut_at):
    data = text.encode()
    bounds = [0, *cut_at, len(data)]
    parts = [data[a:b].hex() for a, b in zip(bounds, bounds[1:], strict=False)]
    result, chunks = run_collecting([PY, "-c", SPLIT_WRITES, *parts], tmp_path)
    assert result.passed
    assert "".join(chunks) == text
    assert not any("\ufffd" in chunk for chunk in chunks)


def test_bytes_that_are_not_utf8_are_replaced_not_fatal(tmp_path):
    result, chunks = run_collecting([PY, "-c", SPLIT_WRITES, b"\xff\xfe ok\n".hex(), b"\xc3".hex()], tmp_path)
    text = "".join(chunks)
    assert result.passed
    assert "\ufffd" in text and " ok\n" in text


# -- environment ----------------------------------------------------------------------------------------


def test_the_workers_secrets_do_not_reach_the_command(tmp_path, monkeypatch):
    secrets = {
        "DJANGO_SECRET": "django-s3cret",
        "DJANGO_SECRET_KEY": "django-key-s3cret",
        "DATABASE_URL": "postgres://rb:db-s3cret@db/rb",
        "CELERY_BROKER_URL": "redis://:broker-s3cret@redis:6379/0",
        "AWS_SECRET_ACCESS_KEY": "aws-s3cret",
        "GIT_ASKPASS": "/usr/bin/askpass-s3cret",
        "SSH_AUTH_SOCK": "/tmp/ssh-s3cret/agent",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    home = tmp_path / "home"
    home.mkdir()
    result, chunks = run_collecting(["env"], tmp_path, env=minimal_env(home))
    assert result.passed
    seen = dict(line.split("=", 1) for line in "".join(chunks).splitlines())
    assert not set(secrets) & set(seen)
    assert "s3cret" not in "".join(chunks)
    assert seen["HOME"] == str(home)
    assert seen["CI"] == "true"
    assert seen["LANG"] == "C.UTF-8"
    assert seen["PATH"]


def test_minimal_env_keeps_only_the_allowlist_plus_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://x")
    monkeypatch.setenv("TZ", "UTC")
    env = minimal_env(tmp_path, {"RELEASEBOARD_COMMIT": "abc"})
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "TZ", "HOME", "CI", "PYTHONDONTWRITEBYTECODE", "RELEASEBOARD_COMMIT"}
    assert env["TZ"] == "UTC"
    assert env["RELEASEBOARD_COMMIT"] == "abc"


def test_minimal_env_has_a_path_even_when_the_worker_has_none(tmp_path, monkeypatch):
    monkeypatch.delenv("PATH", raising=False)
    assert minimal_env(tmp_path)["PATH"] == "/usr/local/bin:/usr/bin:/bin"


# -- not started ------------------------------------------------------------------------------------


def test_a_command_that_does_not_exist_is_not_started_and_says_why(tmp_path):
    result, chunks = run_collecting(["no-such-test-runner-xyz", "--all"], tmp_path)
    assert result.outcome is Outcome.NOT_STARTED and not result.passed
    assert result.exit_code is None
    assert "could not start 'no-such-test-runner-xyz'" in result.message
    assert "No such file" in result.message
    assert chunks == []


def test_a_file_that_is_not_executable_is_not_started(tmp_path):
    script = tmp_path / "run-tests.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result, _ = run_collecting([str(script)], tmp_path)
    assert result.outcome is Outcome.NOT_STARTED
    assert "Permission denied" in result.message


def test_a_missing_working_directory_is_not_started(tmp_path):
    result, _ = run_collecting(["true"], tmp_path / "gone")
    assert result.outcome is Outcome.NOT_STARTED


def test_an_empty_command_line_is_not_started_and_says_why(tmp_path):
    # BUG: a test command of only spaces passes the runner's `if not command` guard,
    # splits to [], and Popen([]) raises IndexError instead of returning NOT_STARTED.
    result, _ = run_collecting(split_command("   "), tmp_path)
    assert result.outcome is Outcome.NOT_STARTED
    assert result.message


# -- what the command starts with ----------------------------------------------------------------


def test_the_command_starts_with_default_signal_handling_and_only_the_standard_streams(tmp_path):
    # The supervisor is a Python process (which ignores SIGPIPE and, here, SIGINT): a test
    # suite that inherited those would behave differently than on a developer's machine
    # (`yes | head` printing "Broken pipe"), and the supervisor's status pipe is its own.
    # A signal the worker ignores (a library may) is not ignored by the command either.
    # So is signal 32, which the C library keeps for itself and so cannot be reset by the
    # usual call (a CI machine's worker inherited it ignored).
    before = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    reserved_before = raw_sigaction(32, 1)  # SIG_IGN; the whole previous action, to put back
    try:
        result, chunks = run_collecting(["grep", "^SigIgn:", "/proc/self/status"], tmp_path)
    finally:
        signal.signal(signal.SIGUSR2, before)
        if reserved_before is not None:
            raw_sigaction(32, reserved_before)
    assert result.passed, chunks
    assert int("".join(chunks).split()[1], 16) == 0, chunks  # no signal ignored
    result, chunks = run_collecting(["ls", "/proc/self/fd"], tmp_path)
    assert result.passed, chunks
    assert "".join(chunks).split() == ["0", "1", "2", "3"]  # 3: the directory ls reads


def test_a_pipe_closed_early_ends_the_writer_quietly_as_in_a_shell(tmp_path):
    result, chunks = run_collecting(["sh", "-c", "yes | head -n 1"], tmp_path)
    assert result.passed
    assert "".join(chunks) == "y\n"


def test_the_supervisor_script_imports_only_what_starts_fast(tmp_path):
    # It starts for every build and test command: subprocess, threading, pathlib, typing,
    # enum and dataclasses would be some 40 ms of imports, more than `true` takes to run.
    from releaseboard.sandbox import supervisor

    # Without arguments it stops right after its imports (an IndexError on its argv).
    proc = subprocess.run([PY, "-I", "-S", "-X", "importtime", supervisor.__file__], capture_output=True, text=True)
    imported = {line.rpartition("|")[2].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "ctypes" in imported, proc.stderr[-2000:]
    assert not imported & {"subprocess", "threading", "pathlib", "typing", "enum", "dataclasses", "django"}


# -- no shell ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        ("echo $(id); rm -rf x", ["echo", "$(id);", "rm", "-rf", "x"]),
        ("echo `id` | tee out && reboot", ["echo", "`id`", "|", "tee", "out", "&&", "reboot"]),
        ("echo a > b < c 2>&1 &", ["echo", "a", ">", "b", "<", "c", "2>&1", "&"]),
        ("echo ${HOME} ~ *", ["echo", "${HOME}", "~", "*"]),
        (
            'python3 -m pytest -k "login and not slow" tests/',
            ["python3", "-m", "pytest", "-k", "login and not slow", "tests/"],
        ),
        ("make 'test all'", ["make", "test all"]),
        ("echo # not a comment", ["echo", "#", "not", "a", "comment"]),
    ],
)
def test_split_command_does_not_interpret_shell_syntax(line, argv):
    assert split_command(line) == argv


def test_an_unbalanced_quote_is_refused(tmp_path):
    with pytest.raises(ValueError):
        split_command("echo 'unterminated")


def test_shell_syntax_reaches_the_command_as_plain_arguments(tmp_path):
    victim = tmp_path / "x"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep\n")
    result, chunks = run_collecting(split_command("echo $(id); rm -rf x"), tmp_path)
    assert result.passed
    assert "".join(chunks) == "$(id); rm -rf x\n"
    assert (victim / "keep.txt").exists()
