"""Not collected by the suite (its name is not test_*.py): tests/test_testenv.py runs it
in a pytest of its own on two xdist workers, and each worker says where its work goes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

REPORT = "RELEASEBOARD_TEST_REPORT_DIR"


@pytest.mark.parametrize("n", range(4))
def test_inner_report_the_work_dir(n: int) -> None:
    """Run only by the test below, in two xdist workers: each says where its work goes."""
    (Path(os.environ[REPORT]) / f"{os.environ.get('PYTEST_XDIST_WORKER', '-')}-{n}").write_text(str(settings.WORK_DIR))
