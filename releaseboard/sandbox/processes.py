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
(`supervisor.supervise()`, supervisor.py run as a script: standard library only, no Django). The
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
import sys
import threading
from collections.abc import Iterator

from releaseboard.sandbox import supervisor
from releaseboard.sandbox.supervisor import (
    PR_GET_CHILD_SUBREAPER,
    PR_SET_CHILD_SUBREAPER,
    TOKEN_VARIABLE,
    Proc,
    ProcessTree,
    _prctl,
    snapshot,
)

__all__ = ["PR_GET_CHILD_SUBREAPER", "TOKEN_VARIABLE", "Proc", "ProcessTree", "_prctl", "snapshot", "subreaper"]

_lock = threading.Lock()
_users = 0
_was_subreaper = False


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


def supervisor_argv(status_fd: int, argv: list[str]) -> list[str]:
    """How the worker starts the supervisor for argv: supervisor.py as a script, run by the
    worker's own interpreter in isolated mode without site-packages (so no Django and no
    Celery are loaded, and nothing of the command's environment changes the supervisor)."""
    script = os.path.abspath(supervisor.__file__)
    return [sys.executable, "-I", "-S", script, str(os.getpid()), str(status_fd), "--", *argv]
