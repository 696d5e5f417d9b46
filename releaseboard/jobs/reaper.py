"""Settles jobs that lost their worker, and republishes jobs that never reached one."""

from __future__ import annotations

import functools
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from releaseboard.audit.service import record as audit_record
from releaseboard.jobs import registry
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.jobs.service import _scope, publish

log = logging.getLogger(__name__)


def reap() -> dict[str, int]:
    """Requeue (or fail, past max attempts) RUNNING jobs whose lease ran out, and publish
    QUEUED jobs whose message was lost or never sent. Safe to run anywhere, any time."""
    now = timezone.now()
    counts = {"requeued": 0, "failed": 0, "republished": 0}
    for job in Job.objects.filter(state=JobState.RUNNING, lease_expires_at__lt=now):
        with transaction.atomic():
            # Conditional on the token we saw: if the worker renewed meanwhile, hands off.
            if job.attempt < job.max_attempts:
                moved = Job.objects.filter(pk=job.pk, state=JobState.RUNNING, lease_token=job.lease_token).update(
                    state=JobState.QUEUED,
                    lease_token="",
                    lease_expires_at=None,
                    published_at=None,
                    message=f"Worker stopped answering (attempt {job.attempt}); queued again.",
                )
                if moved:
                    audit_record("job.requeued", actor=None, repository=_scope(job), obj=job, result=JobReason.STALE)
                    counts["requeued"] += 1
                    # partial binds this job's id now, not the loop variable's last value.
                    transaction.on_commit(functools.partial(publish, job.pk))
            else:
                moved = Job.objects.filter(pk=job.pk, state=JobState.RUNNING, lease_token=job.lease_token).update(
                    state=JobState.FAILED,
                    reason=JobReason.TOO_MANY_ATTEMPTS,
                    finished_at=now,
                    lease_expires_at=None,
                    message=(
                        f"The worker stopped answering {job.attempt} times; gave up. Check the worker logs, then retry."
                    ),
                )
                if moved:
                    job.refresh_from_db()
                    kind = registry.get(job.kind)
                    if kind.on_final:
                        kind.on_final(job)
                    audit_record(
                        "job.failed", actor=None, repository=_scope(job), obj=job, result=JobReason.TOO_MANY_ATTEMPTS
                    )
                    counts["failed"] += 1
    cutoff = now - timedelta(seconds=settings.JOB_REPUBLISH_SECONDS)
    for job_id in (
        Job.objects.filter(state=JobState.QUEUED).exclude(published_at__gt=cutoff).values_list("pk", flat=True)
    ):
        if publish(job_id):
            counts["republished"] += 1
    return counts
