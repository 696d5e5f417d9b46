"""A job writes its log and steps in bulk, yet a reader following the log sees each line
promptly: real jobs on a real git remote, their SQL statements counted."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from releaseboard.jobs import execution
from releaseboard.jobs.models import Job, JobLogLine, JobState, JobStep
from releaseboard.releases import services
from releaseboard.releases.models import Promotion, Repository
from tests.flows import requested_promotion, sync

pytestmark = pytest.mark.django_db(transaction=True)

# Statements of the job's own connection (the heartbeat thread's are apart), as Django
# logs them (BEGIN and COMMIT included) with only the flushes a job must do: before a
# remote git command, a lease check, a transaction, a long command, and at its end.
# Measured: 64 and 98 on SQLite, 68 and 101 on PostgreSQL (80 and 107 on SQLite before the
# runners stopped reading rows again and writing the review and staging's summary in
# separate statements; 121 and 127 when each line and step was written on its own). The
# bounds leave a few statements for the two databases and for where a flush falls.
TEST_JOB_MAX_STATEMENTS = 72
PROMOTE_JOB_MAX_STATEMENTS = 106


def _requested_promotion(repository: Repository, remote: Any, developer: Any, name: str) -> Promotion:
    sync(repository, developer)
    return requested_promotion(repository, remote, developer, name)


def _run_counted(job: Job) -> int:
    with CaptureQueriesContext(connection) as queries:
        execution.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.message
    return len(queries)


def _assert_log_and_steps_complete(job: Job) -> None:
    """seq runs 1..n without a hole for lines and steps; every step ended after it began."""
    seqs = list(JobLogLine.objects.filter(job=job).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert job.log_lines == len(seqs) > 0
    steps = list(JobStep.objects.filter(job=job).order_by("seq"))
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))
    for step in steps:
        assert step.finished_at is not None and step.outcome, step.name
        assert step.started_at <= step.finished_at, step.name
    commands = [text for text in JobLogLine.objects.filter(job=job).values_list("text", flat=True) if text[:2] == "$ "]
    assert len(commands) == len([s for s in steps if s.command])


def test_a_promotions_test_and_promote_jobs_stay_within_their_sql_statements(
    repository, remote, developer, release_manager, monkeypatch
):
    # Only the flushes the job must do: no flush because time passed, whatever the load.
    monkeypatch.setattr(execution, "LOG_FLUSH_SECONDS", 3600.0)
    promotion = _requested_promotion(repository, remote, developer, "bulk")
    test_job = Job.objects.get(kind="test_promotion", state=JobState.QUEUED)
    tested = _run_counted(test_job)
    promotion.refresh_from_db()
    services.promote(promotion, actor=release_manager)
    promote_job = Job.objects.get(kind="promote", state=JobState.QUEUED)
    promoted = _run_counted(promote_job)

    assert Promotion.objects.get(pk=promotion.pk).state == "promoted"
    assert remote.head("staging") == Promotion.objects.get(pk=promotion.pk).merge_sha
    assert tested <= TEST_JOB_MAX_STATEMENTS, tested
    assert promoted <= PROMOTE_JOB_MAX_STATEMENTS, promoted
    _assert_log_and_steps_complete(test_job)
    _assert_log_and_steps_complete(promote_job)


def test_a_line_a_running_job_logs_is_seen_by_another_connection_within_the_flush_interval(
    repository, remote, developer
):
    """The test command prints a line, then runs on for seconds: a reader on its own
    connection sees the running step and the line while the job still runs."""
    # The printed text is not in the command line (which the log shows with the step).
    command = "python3 -c \"import time; print('first line of', 'the tests', flush=True); time.sleep(6)\""
    Repository.objects.filter(pk=repository.pk).update(test_command=command)
    repository.refresh_from_db()
    _requested_promotion(repository, remote, developer, "live")
    job = Job.objects.get(kind="test_promotion", state=JobState.QUEUED)

    def work() -> None:
        try:
            execution.run(job.pk)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        step = None
        while step is None and time.monotonic() < deadline:
            step = JobStep.objects.filter(job=job, name="Test").first()
            time.sleep(0.02)
        assert step is not None, "the running test step was never written"
        assert step.finished_at is None  # written while it runs
        step_seen = time.monotonic()
        line_seen = None
        while line_seen is None and time.monotonic() < step_seen + 5:
            if JobLogLine.objects.filter(job=job, text__contains="first line of the tests").exists():
                line_seen = time.monotonic()
            time.sleep(0.02)
        assert line_seen is not None, "the line was not written while the job ran"
        # The command starts, prints, the sandbox reads it (every 0.2 s at most), the next
        # flush is due at most LOG_FLUSH_SECONDS after the step's: about half a second,
        # doubled for a loaded machine.
        assert line_seen - step_seen <= 1.5, line_seen - step_seen
        job.refresh_from_db()
        assert job.state == JobState.RUNNING
        assert job.log_lines == JobLogLine.objects.filter(job=job).count()
    finally:
        Job.objects.filter(pk=job.pk).update(cancel_requested_at=job.created_at)
        worker.join(timeout=60)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    _assert_log_and_steps_complete(job)
