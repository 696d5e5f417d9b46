"""Creating, publishing and cancelling jobs."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from releaseboard.audit.service import record as audit_record
from releaseboard.jobs import registry
from releaseboard.jobs.models import Job, JobReason, JobState

log = logging.getLogger(__name__)


def create_job(
    kind: str,
    *,
    title: str,
    params: dict[str, Any] | None = None,
    created_by: Any = None,
    subject: Any = None,
    scope: Any = None,
    lock_key: str = "",
    idempotency_key: str | None = None,
) -> Job:
    """Write a QUEUED job row and publish its id to Celery once the transaction commits.

    Must run inside the caller's transaction: if that rolls back, no job exists and no
    message is sent. `scope` is any object with id and name (the repository).
    """
    job = Job.objects.create(
        kind=kind,
        queue=registry.queue_for(kind),
        title=title[:255],
        params=params or {},
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        subject_type=type(subject).__name__.lower() if subject is not None else "",
        subject_id=getattr(subject, "pk", None),
        scope_id=getattr(scope, "id", None),
        scope_name=getattr(scope, "name", "") or "",
        lock_key=lock_key,
        idempotency_key=idempotency_key,
        max_attempts=settings.JOB_MAX_ATTEMPTS,
    )
    job_id = job.pk
    transaction.on_commit(lambda: publish(job_id))
    return job


def publish(job_id: int, countdown: float = 0) -> bool:
    """Send the job's id to its queue. A broker outage is not an error for the user: the
    row stays QUEUED and the reaper publishes it again (the outbox pattern)."""
    from releaseboard.jobs.tasks import run_job

    job = Job.objects.filter(pk=job_id, state=JobState.QUEUED).first()
    if job is None:
        return False
    try:
        if countdown:
            run_job.apply_async(args=(job_id,), queue=job.queue, countdown=countdown)
        else:
            run_job.apply_async(args=(job_id,), queue=job.queue)
    except Exception as exc:  # any broker error: the reaper will try again
        log.warning("could not publish job %s, will retry: %s", job_id, exc)
        return False
    Job.objects.filter(pk=job_id).update(published_at=timezone.now())
    return True


def cancel(job: Job, *, actor: Any) -> Job:
    """Cancel a queued job at once, or ask a running one to stop at its next check."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.state == JobState.QUEUED:
            job.state = JobState.CANCELLED
            job.reason = JobReason.CANCELLED
            job.message = f"Cancelled by {actor.get_username()} before it started."
            job.finished_at = timezone.now()
            job.cancel_requested_at = job.finished_at
            job.cancel_requested_by = actor
            job.save()
            kind = registry.get(job.kind)
            if kind.on_final:
                kind.on_final(job)
            audit_record("job.cancelled", actor=actor, repository=_scope(job), obj=job, result="cancelled")
        elif job.state == JobState.RUNNING and job.cancel_requested_at is None:
            job.cancel_requested_at = timezone.now()
            job.cancel_requested_by = actor
            job.save(update_fields=["cancel_requested_at", "cancel_requested_by"])
            audit_record("job.cancel_requested", actor=actor, repository=_scope(job), obj=job)
    return job


def active_jobs(**filters: Any) -> Any:
    return Job.objects.filter(state__in=JobState.active(), **filters)


def stale_filter(now: Any) -> Q:
    return Q(state=JobState.RUNNING, lease_expires_at__lt=now)


class _Scope:
    def __init__(self, job: Job) -> None:
        self.id = job.scope_id
        self.name = job.scope_name


def _scope(job: Job) -> _Scope:
    return _Scope(job)
