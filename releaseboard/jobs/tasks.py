"""Celery glue only: the task carries a job id, the row says what to do."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections

from releaseboard.jobs import execution, reaper


@shared_task(name="releaseboard.jobs.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: int) -> None:
    close_old_connections()
    execution.run(job_id)


@shared_task(name="releaseboard.jobs.reap", ignore_result=True)
def reap() -> None:
    reaper.reap()
