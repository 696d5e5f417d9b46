"""Finding and killing every process a command left behind, on Linux.

A process group is not enough: a test suite's child can call setsid() (or be started
with start_new_session) and leave both the group and the session. While a command
runs, the process that called sandbox.run is a *child subreaper* (prctl
PR_SET_CHILD_SUBREAPER), so such orphans are re-parented to it instead of to init, and
stay findable through the ppid links in /proc. Only processes that belong to the
command are killed and reaped: its descendants, its session and group, anything seen
in its tree before, and orphans that carry the run's token in their environment. The
worker's other children (a git command in another thread) are never touched.

The command does not run as the worker's own child but under a small *supervisor*
(`supervise()`, this file run as a script: standard library only, no Django). The
supervisor asks the kernel for SIGTERM when the worker dies (PR_SET_PDEATHSIG), is a
child subreaper for the whole run, and on that signal, on the worker's stop request or
when the command ends, kills the command's tree before it exits. So a worker killed
with SIGKILL (or a `make run` stopped with Ctrl-C) takes its test with it within a
fraction of a second instead of leaving it running in the worktree the job's retry
is about to use.

Limits (see docs/security.md): a process that escapes before it was ever seen *and*
clears its environment is not found; a fork bomb may outrun the sweep for its few
seconds. cgroups v2 would close both; this host has only cgroup v1.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
TOKEN_VARIABLE = "SANDBOX_RUN_ID"
SWEEP_SECONDS = 5.0

_lock = threading.Lock()
_users = 0
_was_subreaper = False


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    sid: int
    start: int  # clock ticks after boot: tells a reused pid from the process we saw
    state: str


def _prctl(option: int, value: int | ctypes.c_int | ctypes._Pointer[ctypes.c_int]) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def subreaper() -> Iterator[bool]:
    """Be a child subreaper while the block runs; yields whether that worked.

    Only for the duration of a run: outside it, orphans of unrelated processes (a Celery
    pool's, a test session's) go to init as usual, so nobody else's zombies pile up here.
    Re-entrant across threads; a process that already was a subreaper stays one.
    """
    global _users, _was_subreaper
    with _lock:
        if _users == 0:
            current = ctypes.c_int(0)
            _was_subreaper = _prctl(PR_GET_CHILD_SUBREAPER, ctypes.pointer(current)) and current.value != 0
            ok = _was_subreaper or _prctl(PR_SET_CHILD_SUBREAPER, 1)
        else:
            ok = True
        _users += 1 if ok else 0
    try:
        yield ok
    finally:
        if ok:
            with _lock:
                _users -= 1
                if _users == 0 and not _was_subreaper:
                    _prctl(PR_SET_CHILD_SUBREAPER, 0)


def snapshot() -> dict[int, Proc]:
    """Every process on the machine, read from /proc/<pid>/stat."""
    procs: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses; it ends at the last ")".
        fields = stat.rpartition(")")[2].split()
        if len(fields) < 20:
            continue
        pid = int(entry.name)
        procs[pid] = Proc(pid, int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]), fields[0])
    return procs


def _has_token(pid: int, token: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{TOKEN_VARIABLE}={token}".encode() in environ.split(b"\0")


class ProcessTree:
    """The processes that belong to one command run, followed while it runs."""

    def __init__(self, root: int, token: str) -> None:
        self.root = root
        self.token = token
        self.me = os.getpid()
        self.seen: dict[int, int] = {}  # pid -> start time

    def members(self, procs: dict[int, Proc]) -> set[int]:
        roots = {self.root} if self.root in procs else set()
        for p in procs.values():
            if p.pid == self.me:
                continue
            if p.sid == self.root or p.pgid == self.root or self.seen.get(p.pid) == p.start:
                roots.add(p.pid)
            elif p.ppid == self.me and p.pid != self.root and _has_token(p.pid, self.token):
                roots.add(p.pid)  # an orphan that left the session, re-parented to us
        children: dict[int, list[int]] = {}
        by_session: dict[int, list[int]] = {}
        for p in procs.values():
            children.setdefault(p.ppid, []).append(p.pid)
            by_session.setdefault(p.sid, []).append(p.pid)
        my_session = os.getsid(0)
        found: set[int] = set()
        stack = list(roots)
        while stack:
            pid = stack.pop()
            if pid in found or pid == self.me:
                continue
            found.add(pid)
            stack.extend(children.get(pid, ()))
            # A new session started by one of ours is ours: this finds the middle process
            # of a double fork, a zombie by now, whose environment can no longer be read.
            sid = procs[pid].sid
            if sid not in (0, my_session):
                stack.extend(by_session.get(sid, ()))
        return found

    def track(self) -> None:
        """Remember who belongs to the run now, in case they escape later."""
        procs = snapshot()
        for pid in self.members(procs):
            self.seen[pid] = procs[pid].start

    def kill_all(self, timeout: float = SWEEP_SECONDS) -> int:
        """SIGKILL every process of the run that is left and reap the ones re-parented to
        us; returns how many remain (0 unless something outran the sweep).

        Call after the root process was waited for: the root's own exit status belongs
        to its Popen, so it is never reaped here.
        """
        deadline = time.monotonic() + timeout
        while True:
            procs = snapshot()
            left = self.members(procs) - {self.root}
            if not left:
                return 0
            for pid in left:
                # Remembered: once it is a zombie its environment (the token) is gone.
                self.seen[pid] = procs[pid].start
                if procs[pid].state != "Z":
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            for pid in left:
                if procs[pid].ppid == self.me:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
            if time.monotonic() > deadline:
                return len(left)
            time.sleep(0.01)


# -- the supervisor: the process that owns one command ------------------------------------

SUPERVISOR_POLL_SECONDS = 0.05


def _die_with_parent() -> None:
    """In the command, before exec: SIGKILL should the supervisor itself be killed."""
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


def supervise(parent: int, status_fd: int, argv: list[str]) -> int:
    """Run argv to its end and kill whatever it left behind; report on status_fd.

    Lines written to status_fd: `started <pid>` or `error <message>` first, then
    `exit <returncode>` or `stopped` (SIGTERM: the worker asked, or died). The command
    inherits stdout and stderr, so its output goes straight to the worker's pipe.
    """
    status = os.fdopen(status_fd, "w", buffering=1)
    stop = threading.Event()
    # The handler only sets a flag: the kill happens in the loop below, so a signal
    # that arrives while the command is being started cannot skip the cleanup.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the terminal's foreground
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:  # the worker died before the kernel could be told to tell us
        status.write("error the worker stopped before the command started\n")
        return 1
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    except OSError as exc:
        status.write(f"error could not start {argv[0]!r}: {exc.strerror}\n")
        return 127
    status.write(f"started {proc.pid}\n")
    tree = ProcessTree(proc.pid, os.environ.get(TOKEN_VARIABLE, ""))
    tracked_at = 0.0
    code: int | None = None
    try:
        while not stop.is_set():
            code = proc.poll()
            if code is not None:
                break
            if time.monotonic() - tracked_at >= 0.2:
                tree.track()
                tracked_at = time.monotonic()
            stop.wait(SUPERVISOR_POLL_SECONDS)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        tree.kill_all()
    status.write(f"exit {code}\n" if code is not None else "stopped\n")
    return 0


def supervisor_argv(status_fd: int, argv: list[str]) -> list[str]:
    """How the worker starts the supervisor for argv: this file as a script, run by the
    worker's own interpreter, ignoring PYTHON* variables (so no Django and no Celery are
    loaded, and nothing of the command's environment changes the supervisor)."""
    return [sys.executable, "-E", "-s", os.path.abspath(__file__), str(os.getpid()), str(status_fd), "--", *argv]


if __name__ == "__main__":
    # python processes.py <parent pid> <status fd> -- argv...
    sys.exit(supervise(int(sys.argv[1]), int(sys.argv[2]), sys.argv[4:]))
