"""The one way Releaseboard runs a command that a repository configured."""

from __future__ import annotations

import contextlib
import enum
import os
import selectors
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from releaseboard.sandbox.processes import TOKEN_VARIABLE, ProcessTree, subreaper, supervisor_argv

# Only these variables of the worker's environment reach a command. Everything else
# (the Django secret, database and broker URLs, credentials) stays out.
ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "TZ")
READ_CHUNK = 65536
POLL_SECONDS = 0.2
SUPERVISOR_STOP_SECONDS = 10


class Outcome(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    NOT_STARTED = "not_started"


@dataclass(frozen=True)
class CommandResult:
    outcome: Outcome
    exit_code: int | None
    duration: float
    output_bytes: int
    truncated: bool
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


def split_command(command: str) -> list[str]:
    """Split a configured command line into argv, the way a POSIX shell would quote it.

    It is never given to a shell: pipes, `;` and `$(...)` are plain arguments.
    """
    return shlex.split(command)


def minimal_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a command sees: the allowlist, a private HOME, CI=true."""
    env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(home)
    env["CI"] = "true"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra:
        env.update(extra)
    return env


def run(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_output: Callable[[str], None],
    should_cancel: Callable[[], bool] = lambda: False,
    output_cap: int = 2 * 1024 * 1024,
) -> CommandResult:
    """Run argv in cwd and stream its combined output to on_output.

    The command gets a session (and so a process group) of its own. When it ends (by
    itself, on timeout or on cancel) every process it started is killed, even one that
    left the group with setsid(): while it runs, this process is a child subreaper, so
    orphans come back to us (see processes.py). The command runs under a supervisor
    process that kills it and everything it started when this process dies, even by
    SIGKILL (processes.supervise). Output past output_cap is dropped and
    marked; the exit code alone decides whether the command passed, so truncation
    cannot turn a failure into a pass.
    """
    if not argv:
        return CommandResult(Outcome.NOT_STARTED, None, 0.0, 0, False, "the command is empty; configure one")
    with subreaper():
        return _run(
            argv,
            cwd=cwd,
            env=env,
            timeout=timeout,
            on_output=on_output,
            should_cancel=should_cancel,
            output_cap=output_cap,
        )


def _run(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_output: Callable[[str], None],
    should_cancel: Callable[[], bool],
    output_cap: int,
) -> CommandResult:
    started = time.monotonic()
    token = uuid.uuid4().hex
    status_read, status_write = os.pipe()
    try:
        proc = subprocess.Popen(
            supervisor_argv(status_write, argv),
            cwd=cwd,
            # The token marks the run's processes, so an orphan that left the session
            # can still be told apart from the worker's other children.
            env={**env, TOKEN_VARIABLE: token},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(status_write,),
        )
    except OSError as exc:
        os.close(status_read)
        return CommandResult(Outcome.NOT_STARTED, None, 0.0, 0, False, f"could not start {argv[0]!r}: {exc.strerror}")
    finally:
        os.close(status_write)

    assert proc.stdout is not None
    with os.fdopen(status_read) as status:
        first = status.readline()
        if not first.startswith("started "):
            # The supervisor could not start the command (or died): nothing runs.
            _stop(proc)
            output = proc.stdout.read().decode("utf-8", errors="replace").strip()
            proc.stdout.close()
            message = first.partition(" ")[2].strip() or f"the sandbox could not start {argv[0]!r}: {output[-500:]}"
            return CommandResult(Outcome.NOT_STARTED, None, time.monotonic() - started, 0, False, message)
        result = _follow(proc, int(first.split()[1]), token, started, timeout, on_output, should_cancel, output_cap)
        last = status.readline().split()
    if last[:1] == ["exit"] and result.outcome in (Outcome.PASSED, Outcome.FAILED):
        code = int(last[1])
        outcome = Outcome.PASSED if code == 0 else Outcome.FAILED
        return CommandResult(outcome, code, result.duration, result.output_bytes, result.truncated, f"exit code {code}")
    if result.outcome in (Outcome.PASSED, Outcome.FAILED):
        # The supervisor did not say how the command ended (it was killed): not a pass.
        return CommandResult(
            Outcome.FAILED, None, result.duration, result.output_bytes, result.truncated, "the sandbox supervisor died"
        )
    return result


def _follow(
    proc: subprocess.Popen[bytes],
    command_pid: int,
    token: str,
    started: float,
    timeout: float,
    on_output: Callable[[str], None],
    should_cancel: Callable[[], bool],
    output_cap: int,
) -> CommandResult:
    """Stream the supervisor's pipe until it exits, is timed out or cancelled."""
    assert proc.stdout is not None
    tree = ProcessTree(command_pid, token)
    tracked_at = 0.0
    os.set_blocking(proc.stdout.fileno(), False)
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    written = 0
    truncated = False
    stopped: Outcome | None = None
    deadline = started + timeout
    decoder_pending = b""

    def emit(data: bytes) -> None:
        nonlocal written, truncated, decoder_pending
        if truncated:
            return
        room = output_cap - written
        if len(data) > room:
            data = data[:room]
            truncated = True
        written += len(data)
        data = decoder_pending + data
        # Keep an incomplete UTF-8 sequence for the next chunk instead of mangling it.
        cut = len(data)
        for back in range(1, min(4, len(data)) + 1):
            byte = data[-back]
            if byte & 0xC0 == 0x80:
                continue
            if byte >= 0xC0:
                need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
                if back < need:
                    cut = len(data) - back
            break
        decoder_pending = data[cut:]
        text = data[:cut].decode("utf-8", errors="replace")
        if text:
            on_output(text)
        if truncated:
            on_output(f"\n[output truncated at {output_cap} bytes; the exit code still decides the result]\n")

    try:
        while True:
            if time.monotonic() - tracked_at >= POLL_SECONDS:
                tree.track()
                tracked_at = time.monotonic()
            for _key, _mask in selector.select(POLL_SECONDS):
                chunk = proc.stdout.read(READ_CHUNK)
                if chunk:
                    emit(chunk)
            if proc.poll() is not None:
                # Drain what is left in the pipe.
                while True:
                    chunk = proc.stdout.read(READ_CHUNK)
                    if not chunk:
                        break
                    emit(chunk)
                break
            if time.monotonic() > deadline:
                stopped = Outcome.TIMED_OUT
            elif should_cancel():
                stopped = Outcome.CANCELLED
            if stopped:
                _stop(proc)
                break
    finally:
        selector.close()
        # Always: children left behind (a server the tests started, a daemon that
        # called setsid) die with the run. The supervisor does it; should it have been
        # killed itself, the sweep here finds the escapees that came back to us.
        _stop(proc)
        tree.kill_all()
        proc.stdout.close()
    if decoder_pending:
        on_output(decoder_pending.decode("utf-8", errors="replace"))

    duration = time.monotonic() - started
    if stopped is Outcome.TIMED_OUT:
        return CommandResult(
            stopped, None, duration, written, truncated, f"timed out after {timeout:g} s; the command was killed"
        )
    if stopped is Outcome.CANCELLED:
        return CommandResult(stopped, None, duration, written, truncated, "cancelled; the command was killed")
    code = proc.returncode
    outcome = Outcome.PASSED if code == 0 else Outcome.FAILED
    return CommandResult(outcome, code, duration, written, truncated, f"exit code {code}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask the supervisor to kill the command's tree and exit; kill it if it will not."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SUPERVISOR_STOP_SECONDS)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
