"""Record the test command's JUnit report from inside the test job (called by releases.runners)."""

from __future__ import annotations

from pathlib import Path

from releaseboard.jobs.execution import JobContext
from releaseboard.review.junit import ReportRefused, summarise
from releaseboard.review.models import TestReport


def record_test_report(ctx: JobContext, path: Path) -> None:
    """Store the summary of the report at `path`, if the test command wrote one."""
    try:
        summary = summarise(path)
    except (ReportRefused, OSError) as exc:
        ctx.log(f"Could not read the test report: {exc}\n")
        return
    if summary is None:
        return
    with ctx.atomic():
        TestReport.objects.update_or_create(job_id=ctx.job.pk, defaults={"data": summary})
    ctx.log(
        f"Test report: {summary['tests']} tests, {summary['failures']} failures, {summary['errors']} errors, "
        f"{summary['skipped']} skipped.\n"
    )
