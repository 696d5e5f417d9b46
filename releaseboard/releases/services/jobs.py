"""Retrying and cancelling jobs."""

from __future__ import annotations

from typing import Any

from releaseboard.audit.service import record as audit_record
from releaseboard.jobs import service as jobs
from releaseboard.jobs.models import Job, JobState
from releaseboard.refusals import Refused
from releaseboard.releases.models import (
    Branch,
    BranchState,
    Promotion,
    Repository,
)
from releaseboard.releases.services.core import _active_job, _once, _replayed
from releaseboard.releases.services.cycle import test_staging
from releaseboard.releases.services.promotions import promote, retest_promotion
from releaseboard.releases.services.repositories import refresh
from releaseboard.roles import Perm, require

RETRYABLE_KINDS = {"sync", "test_staging", "test_promotion", "promote", "create_branch"}


def is_retryable(job: Job) -> bool:
    """Whether Retry is offered: a failed or cancelled job of a kind that is safe to run again."""
    return job.state in (JobState.FAILED, JobState.CANCELLED) and job.kind in RETRYABLE_KINDS


def retry_job(job: Job, *, actor: Any, idempotency_key: str | None = None) -> Job:
    """ "Retry" a failed or cancelled job where that is safe (release managers)."""
    require(actor, Perm.RETRY_JOB)
    if (replayed := _replayed(idempotency_key)) is not None:
        return replayed
    if job.state not in (JobState.FAILED, JobState.CANCELLED):
        raise Refused(f"Job #{job.pk} is {job.get_state_display().lower()}; only failed or cancelled jobs are retried.")
    if job.kind not in RETRYABLE_KINDS:
        raise Refused(
            "A release or a copy of master to staging is not retried as it was: open its page again, "
            "review what it would do now, and confirm there."
        )
    if job.scope_id is None:
        raise Refused(f"Job #{job.pk} does not name its repository; start it again from the repository's page.")
    repository = Repository.objects.get(pk=job.scope_id)
    if job.kind == "sync":
        return refresh(repository, actor=actor, idempotency_key=idempotency_key)
    if job.kind == "test_staging":
        return test_staging(repository, actor=actor, idempotency_key=idempotency_key)
    if job.subject_id is None:
        raise Refused(f"Job #{job.pk} does not name its {job.subject_type or 'subject'}; start it again from its page.")
    if job.kind == "test_promotion":
        return retest_promotion(Promotion.objects.get(pk=job.subject_id), actor=actor, idempotency_key=idempotency_key)
    if job.kind == "promote":
        return promote(Promotion.objects.get(pk=job.subject_id), actor=actor, idempotency_key=idempotency_key)
    branch = Branch.objects.get(pk=job.subject_id)
    if branch.state != BranchState.FAILED:
        raise Refused(f"{branch.name} is {branch.get_state_display().lower()}; there is nothing to create again.")

    def create() -> Job:
        # Conditional, like promote(): of two retries at once only the first moves it.
        if not Branch.objects.filter(pk=branch.pk, state=BranchState.FAILED).update(state=BranchState.REQUESTED):
            if (first := _active_job("create_branch", branch)) is not None:
                return first
            raise Refused(f"{branch.name} is no longer failed; there is nothing to create again.")
        audit_record("branch.retry_requested", actor=actor, repository=repository, obj=branch)
        return jobs.create_job(
            "create_branch",
            title=f"Create {branch.name}",
            params={"branch": branch.pk},
            created_by=actor,
            subject=branch,
            scope=repository,
            lock_key=repository.lock_key,
            idempotency_key=idempotency_key,
        )

    return _once(idempotency_key, create)


def cancel_job(job: Job, *, actor: Any) -> Job:
    """Cancel a queued job, or ask a running one to stop (release managers)."""
    require(actor, Perm.CANCEL_JOB)
    if job.is_final:
        raise Refused(f"Job #{job.pk} has already ended ({job.get_state_display().lower()}).")
    return jobs.cancel(job, actor=actor)
