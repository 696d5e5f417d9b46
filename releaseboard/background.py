"""Git work a job runs in a thread of its own while it goes on with its database work.

Only git runs in such a thread (each call its own process, on a mirror without the job's
observer): the database is read before it starts and written after it ends, by the job's
own thread and connection. Two CPUs then run the job's two git processes at once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")
# Work a job starts before its push, for after it: the push comes first on a busy CPU.
AHEAD_NICE = 19


class Background(Generic[T]):
    """`function()` running in a daemon thread; `result()` waits for it.

    `nice`: the thread's nice value, and so that of the git processes it starts (Linux
    keeps one per thread, and a child inherits its thread's): work started ahead of what
    it serves gives the CPUs to the job's own processes (a push) while they want them.
    """

    def __init__(self, function: Callable[[], T], name: str, *, nice: int = 0) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function, nice), name=name, daemon=True)
        self._thread.start()

    def _run(self, function: Callable[[], T], nice: int) -> None:
        if nice and sys.platform == "linux":  # elsewhere the whole process would be reniced
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        try:
            self._value = function()
        except BaseException as exc:  # handed to result(), in the caller's thread
            self._error = exc

    def result(self) -> T:
        """Its value once it has ended, or the exception it raised, raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)

    def wait(self) -> None:
        """Wait for it to end, whatever its outcome (nothing of it is wanted any more)."""
        self._thread.join()
