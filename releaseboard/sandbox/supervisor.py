"""The process that owns one sandboxed command, and the process-tree arithmetic it shares
with the worker (see processes.py for why both exist).

This file runs as a script for every build and test command, so it starts a Python
interpreter each time: it imports only what the interpreter has already loaded or what is
cheap (os, sys, select, signal, ctypes), never subprocess, threading, pathlib or
dataclasses (together some 40 ms of imports, more than the command `true` takes to run).
It forks the command itself and waits on a pidfd, so it sees the command end at once
instead of at its next poll.
"""

from __future__ import annotations

# The C module: `signal` would import enum, 5 ms of this script's start (no stubs for it).
import _signal as signal  # type: ignore[import-not-found]
import ctypes
import os
import select
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
TOKEN_VARIABLE = "SANDBOX_RUN_ID"
SWEEP_SECONDS = 5.0
TRACK_SECONDS = 0.2  # how often the command's tree is looked at while it runs


class Proc:
    """One line of /proc/<pid>/stat, the fields used here. (A plain class: typing's
    NamedTuple alone would cost this script 12 ms of imports.)"""

    __slots__ = ("pid", "ppid", "pgid", "sid", "start", "state")

    def __init__(self, pid: int, ppid: int, pgid: int, sid: int, start: int, state: str) -> None:
        self.pid, self.ppid, self.pgid, self.sid, self.state = pid, ppid, pgid, sid, state
        self.start = start  # clock ticks after boot: tells a reused pid from the process we saw


def _prctl(option: int, value: int | ctypes.c_int | ctypes._Pointer[ctypes.c_int]) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


# rt_sigaction by syscall number: the C library's sigaction refuses the two signals it keeps
# for itself (32 and 33 in glibc), yet exec keeps them ignored when the worker's own parent
# ignored them (seen on a CI machine: signal 32). Other architectures leave them as they are.
_RT_SIGACTION = {"x86_64": 13, "aarch64": 134, "riscv64": 134}.get(os.uname().machine)


def raw_sigaction(signum: int, action: int | tuple[int, ...]) -> tuple[int, ...] | None:
    """Set signum's action with the kernel's own call, which the C library does not filter:
    a handler (SIG_DFL 0, SIG_IGN 1) with no flags, or a whole action this returned before.
    Returns the previous action (its handler first), or None if it could not."""
    if _RT_SIGACTION is None:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # handler, flags, restorer, mask: zeros past the handler mean the same in any layout
        words = (action, 0, 0, 0) if isinstance(action, int) else action
        new = (ctypes.c_ulong * 4)(*words)
        old = (ctypes.c_ulong * 4)()
        if libc.syscall(_RT_SIGACTION, signum, new, old, 8) != 0:
            return None
        return tuple(old)
    except (OSError, AttributeError):
        return None


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def snapshot() -> dict[int, Proc]:
    """Every process on the machine, read from /proc/<pid>/stat."""
    procs: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = _read(f"/proc/{entry.name}/stat").decode(errors="replace")
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
        environ = _read(f"/proc/{pid}/environ")
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
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            for pid in left:
                if procs[pid].ppid == self.me:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
            if time.monotonic() > deadline:
                return len(left)
            time.sleep(0.01)


# -- the supervisor -------------------------------------------------------------------------


def _start(argv: list[str]) -> tuple[int, str]:
    """Fork and exec argv in a session of its own, stdin from /dev/null, SIGKILLed should
    the supervisor die; returns (pid, "") or (0, why it could not start)."""
    errors_r, errors_w = os.pipe()  # close-on-exec: empty at EOF when the exec worked
    pid = os.fork()
    if pid == 0:  # the child: only async-signal-safe work until exec (no threads here)
        try:
            os.close(errors_r)
            os.setsid()
            _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            signal.set_wakeup_fd(-1)
            # exec keeps what is ignored (SIGPIPE and SIGXFSZ by Python; SIGINT here; whatever
            # the worker ignored): the command starts with every signal at its default.
            for signum in range(1, signal.NSIG):
                if signum not in (signal.SIGKILL, signal.SIGSTOP):
                    try:
                        signal.signal(signum, signal.SIG_DFL)
                    except (OSError, ValueError):  # one the C library keeps for itself
                        raw_sigaction(signum, 0)
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(errors_w, str(exc.errno or 0).encode())
        finally:
            os._exit(127)
    os.close(errors_w)
    try:
        failed = _read_all(errors_r)
    finally:
        os.close(errors_r)
    if failed:
        os.waitpid(pid, 0)
        return 0, os.strerror(int(failed))
    return pid, ""


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _exit_code(pid: int) -> int | None:
    """The command's exit code (negative: killed by that signal) once it has ended, without
    reaping it: its process group id stays ours until we do."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def supervise(parent: int, status_fd: int, argv: list[str]) -> int:
    """Run argv to its end and kill whatever it left behind; report on status_fd.

    Lines written to status_fd: `started <pid>` or `error <message>` first, then
    `exit <returncode>` or `stopped` (SIGTERM: the worker asked, or died). The command
    inherits stdout and stderr, so its output goes straight to the worker's pipe.
    """
    os.set_inheritable(status_fd, False)  # the command never gets the status pipe

    def say(line: str) -> None:
        os.write(status_fd, f"{line}\n".encode())

    # SIGTERM only wakes the loop below (through the wakeup pipe): the kill happens there,
    # so a signal that arrives while the command is being started cannot skip the cleanup.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the terminal's foreground
    signal.set_wakeup_fd(wake_w)
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:  # the worker died before the kernel could be told to tell us
        say("error the worker stopped before the command started")
        return 1
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    pid, why = _start(argv)
    if not pid:
        say(f"error could not start {argv[0]!r}: {why}")
        return 127
    say(f"started {pid}")
    try:
        ended: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        ended = None  # no pidfd (an old kernel): look every 50 ms instead
    tree = ProcessTree(pid, os.environ.get(TOKEN_VARIABLE, ""))
    tracked_at = 0.0
    code: int | None = None
    try:
        while not stop:
            code = _exit_code(pid)
            if code is not None:
                break
            if time.monotonic() - tracked_at >= TRACK_SECONDS:
                tree.track()
                tracked_at = time.monotonic()
            waiting = [wake_r] + ([ended] if ended is not None else [])
            select.select(waiting, [], [], TRACK_SECONDS if ended is not None else 0.05)
            try:
                while os.read(wake_r, 64):
                    pass
            except BlockingIOError:
                pass
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        os.waitpid(pid, 0)
        tree.kill_all()
    say(f"exit {code}" if code is not None else "stopped")
    return 0


if __name__ == "__main__":
    # python supervisor.py <parent pid> <status fd> -- argv...
    sys.exit(supervise(int(sys.argv[1]), int(sys.argv[2]), sys.argv[4:]))
