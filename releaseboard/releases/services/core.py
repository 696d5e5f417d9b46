"""What every use case shares: answering a repeated request with what the first one made,
row locks against two clicks at once, and the active job of a subject."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from releaseboard.jobs import service as jobs
from releaseboard.jobs.models import Job, JobState


def _existing(idempotency_key: str | None) -> Job | None:
    if not idempotency_key:
        return None
    return Job.objects.filter(idempotency_key=idempotency_key).first()


def _replayed(idempotency_key: str | None, model: Any = None) -> Any:
    """What the first request with this key made, if there was one: a repeated click is
    answered with it even when the state has moved on since (no "already promoted")."""
    job = _existing(idempotency_key)
    if job is None or model is None:
        return job
    return model.objects.get(pk=job.subject_id)


def _locked(model: Any, pk: int) -> Any:
    """Take the row's write lock for the rest of the transaction and read it fresh.

    Two people pressing the same button at the same moment both pass the checks made
    before the transaction; the second waits here for the first to commit, then sees
    what the first did (PostgreSQL: FOR UPDATE; SQLite: the IMMEDIATE transaction
    already holds the database's write lock).
    """
    return model.objects.select_for_update().get(pk=pk)


def _active_job(kind: str, subject: Any, states: Any = None) -> Job | None:
    """The newest job of `kind` about `subject` that has not ended (or is in `states`)."""
    return (
        jobs.active_jobs(kind=kind, subject_type=type(subject).__name__.lower(), subject_id=subject.pk)
        .filter(state__in=states or JobState.active())
        .order_by("-pk")
        .first()
    )


def _once(idempotency_key: str | None, create: Any) -> Any:
    """Run `create` at most once per idempotency key (double clicks, browser retries).

    Returns what the first call made, looked up through the job it created.
    """
    job = _existing(idempotency_key)
    if job is not None:
        return job
    try:
        with transaction.atomic():
            return create()
    except IntegrityError:
        job = _existing(idempotency_key)
        if job is None:
            raise
        return job
