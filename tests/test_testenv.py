"""Test isolation: each pytest-xdist worker has its own var/ directory (and so its own
git mirrors and work trees), although the workers' databases give out the same ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

REPORT = "RELEASEBOARD_TEST_REPORT_DIR"


def test_each_xdist_worker_has_its_own_var_and_work_directory(tmp_path: Path) -> None:
    env = {**os.environ, REPORT: str(tmp_path)}
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "load",
         "tests/xdist_probe.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    by_worker: dict[str, set[str]] = {}
    for report in tmp_path.iterdir():
        by_worker.setdefault(report.name.split("-")[0], set()).add(report.read_text())
    assert set(by_worker) == {"gw0", "gw1"}, by_worker
    assert all(len(dirs) == 1 for dirs in by_worker.values())
    assert by_worker["gw0"] != by_worker["gw1"]
