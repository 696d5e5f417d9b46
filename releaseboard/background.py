"""Git work a job runs in a thread of its own while it goes on with its database work.

Only git runs in such a thread (each call its own process, on a mirror without the job's
observer): the database is read before it starts and written after it ends, by the job's
own thread and connection. Two CPUs then run the job's two git processes at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class Background(Generic[T]):
    """`function()` running in a daemon thread; `result()` waits for it."""

    def __init__(self, function: Callable[[], T], name: str) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function,), name=name, daemon=True)
        self._thread.start()

    def _run(self, function: Callable[[], T]) -> None:
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
