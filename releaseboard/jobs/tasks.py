"""Celery glue only: the task carries a job id, the row says what to do."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections

from releaseboard.jobs import execution, reaper


@shared_task(name="releaseboard.jobs.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: int) -> None:
    close_old_connections()
    busy = execution.lease_busy(job_id)
    if busy is not None:
        # Another job writes to the same repository: come back later rather than keep this
        # worker slot asleep (jobs of other repositories may use it meanwhile).
        queue = execution.postpone(job_id, busy)
        if queue is not None:
            run_job.apply_async(args=(job_id,), queue=queue, countdown=settings.JOB_LEASE_RETRY_SECONDS)
        return
    execution.run(job_id)


@shared_task(name="releaseboard.jobs.reap", ignore_result=True)
def reap() -> None:
    reaper.reap()
