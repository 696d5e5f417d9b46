"""Fault points for the reliability tests, so a test can stop or kill a worker at a
named step of a job and make the real fault happen (a killed process, a paused one).

Inert unless RELEASEBOARD_FAULT_DIR is set, which only the test suite does for the
worker processes it starts. In that directory:
  <point>.pause   present: a job reaching <point> writes <point>.<job id>.reached
                  (containing its pid) and waits until the file is removed
  <point>.crash   present: the process running the job SIGKILLs itself at <point>
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "RELEASEBOARD_FAULT_DIR"


def checkpoint(point: str, job_id: int) -> None:
    root = os.environ.get(ENV)
    if not root:
        return
    folder = Path(root)
    reached = folder / f"{point}.{job_id}.reached"
    if (folder / f"{point}.crash").exists():
        reached.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    pause = folder / f"{point}.pause"
    if pause.exists():
        reached.write_text(str(os.getpid()))
        while pause.exists():
            time.sleep(0.05)
