"""A test command's JUnit XML report ($RELEASEBOARD_JUNIT_XML) becomes the failure summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from releaseboard.jobs.models import Job, JobState
from releaseboard.releases import services
from releaseboard.review.junit import ReportRefused, summarise
from releaseboard.review.models import TestReport
from tests.conftest import run_jobs
from tests.flows import sync

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="shop" tests="3">
  <testcase classname="test_cart.CartTest" name="test_total"><failure message="AssertionError: 4 != 5">Traceback
  File "test_cart.py", line 9
AssertionError: 4 != 5</failure></testcase>
  <testcase classname="test_cart.CartTest" name="test_tax"/>
  <testcase classname="test_cart.CartTest" name="test_later"><skipped/></testcase>
</testsuite></testsuites>
"""

# A test command of the repository under test: writes a report where Releaseboard asks, fails.
WRITER = f"""import os, sys
path = os.environ.get("RELEASEBOARD_JUNIT_XML")
if path:
    open(path, "w").write({REPORT!r})
print("1 failed, 1 passed, 1 skipped")
sys.exit(1)
"""


def test_summary_lists_failing_tests_with_their_assertion(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(REPORT)
    summary = summarise(path)
    assert summary is not None
    assert (summary["tests"], summary["failures"], summary["errors"], summary["skipped"]) == (3, 1, 0, 1)
    (failed,) = summary["failed"]
    assert failed["name"] == "test_cart.CartTest.test_total"
    assert failed["message"] == "AssertionError: 4 != 5" and "line 9" in failed["detail"]


def test_no_report_is_no_summary(tmp_path: Path) -> None:
    assert summarise(tmp_path / "missing.xml") is None


def test_a_report_with_a_doctype_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite>&a;</testsuite>')
    with pytest.raises(ReportRefused, match="DOCTYPE"):
        summarise(path)


def test_test_job_records_the_report_the_test_command_wrote(repository: Any, remote: Any, developer: Any) -> None:
    remote.commit_on("staging", {"junit_tests.py": WRITER}, "Tests that report")
    repository.test_command = "python3 junit_tests.py"
    repository.save(update_fields=["test_command"])
    sync(repository, developer)
    services.test_staging(repository, actor=developer)
    run_jobs()
    job = Job.objects.filter(kind="test_staging").latest("id")
    assert job.state == JobState.FAILED
    report = TestReport.objects.get(job=job).data
    assert report["failures"] == 1 and report["failed"][0]["name"] == "test_cart.CartTest.test_total"
