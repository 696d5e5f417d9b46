"""releaseboard.background: a thread's value or exception handed to the caller, and the
nice value work started ahead runs at (its child processes too, as its git does)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from releaseboard.background import AHEAD_NICE, Background


def test_the_value_and_the_exception_reach_the_caller() -> None:
    assert Background(lambda: 42, "answer").result() == 42

    def broken() -> int:
        raise ValueError("no answer")

    failed = Background(broken, "broken")
    failed.wait()  # waiting raises nothing
    with pytest.raises(ValueError, match="no answer"):
        failed.result()


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")
def test_work_started_ahead_runs_niced_with_its_child_processes_and_the_caller_does_not() -> None:
    def nice_of_a_child() -> tuple[int, int]:
        # Field 19 of /proc/<pid>/stat is the nice value (after the command name in parentheses).
        stat = subprocess.run(["cat", "/proc/self/stat"], capture_output=True, text=True, check=True).stdout
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), int(stat.rsplit(")", 1)[1].split()[16])

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread_nice, child_nice = Background(nice_of_a_child, "ahead", nice=AHEAD_NICE).result()

    assert thread_nice == child_nice == max(before, AHEAD_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # the caller's is unchanged
    assert Background(nice_of_a_child, "plain").result() == (before, before)
