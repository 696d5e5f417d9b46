"""Finding and killing every process a command left behind, on Linux.

A process group is not enough: a test suite's child can call setsid() (or be started
with start_new_session) and leave both the group and the session. While a command
runs, the process that called sandbox.run is a *child subreaper* (prctl
PR_SET_CHILD_SUBREAPER), so such orphans are re-parented to it instead of to init, and
stay findable through the ppid links in /proc. Only processes that belong to the
command are killed and reaped: its descendants, its session and group, anything seen
in its tree before, and orphans that carry the run's token in their environment. The
worker's other children (a git command in another thread) are never touched.

Limits (see docs/security.md): a process that escapes before it was ever seen *and*
clears its environment is not found; a fork bomb may outrun the sweep for its few
seconds. cgroups v2 would close both; this host has only cgroup v1.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
