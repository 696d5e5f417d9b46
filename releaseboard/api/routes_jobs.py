"""Jobs: detail with steps, the log from a cursor (long-poll), cancel and retry."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from ninja import Query, Router, Schema, Status

from releaseboard.jobs.models import Job, JobLogLine, JobState
from releaseboard.releases import selectors, services
from releaseboard.releases.models import Repository
from releaseboard.roles import Perm
from releaseboard.tokens.models import Scope

from . import access, schemas
from .access import idempotency_key, job_for

router = Router(tags=["jobs"])

LOG_PAGE = 500
LONG_POLL_MAX = 25  # seconds; below common proxy timeouts
LONG_POLL_STEP = 0.25


class JobFilter(Schema):
    repo: str = ""
    state: JobState | None = None
    before: int | None = None


@router.get("/jobs", response=list[schemas.JobOut], summary="Jobs, newest first (50 a page; ?before=id)")
def job_list(request: HttpRequest, filters: Query[JobFilter]) -> list[dict[str, Any]]:
    access.require_perm(request, Perm.VIEW, Scope.READ)
    jobs = Job.objects.select_related("created_by").order_by("-id")
    if filters.repo:
        repository = Repository.objects.filter(name=filters.repo).first()
        jobs = jobs.filter(scope_id=repository.pk if repository else -1)
    if filters.state:
        jobs = jobs.filter(state=filters.state)
    if filters.before:
        jobs = jobs.filter(pk__lt=filters.before)
    return [schemas.job_out(j) for j in jobs[:50]]


class AttentionOut(Schema):
    stale: list[schemas.JobOut]
    waiting: list[schemas.JobOut]
    failed: list[schemas.JobOut]


@router.get("/jobs/attention", response=AttentionOut, summary="Stuck, unpublished and recently failed jobs")
def job_attention(request: HttpRequest) -> dict[str, Any]:
    access.require_perm(request, Perm.RETRY_JOB, Scope.READ)
    attention = selectors.jobs_needing_attention(
        timezone.now(), heartbeat_grace=3 * settings.JOB_HEARTBEAT_SECONDS, publish_grace=settings.JOB_REPUBLISH_SECONDS
    )
    return {
        "stale": [schemas.job_out(j) for j in attention.stale],
        "waiting": [schemas.job_out(j) for j in attention.waiting],
        "failed": [schemas.job_out(j) for j in attention.failed],
    }


@router.get("/jobs/{job_id}", response=schemas.JobDetailOut, summary="One job with its steps")
def job_detail(request: HttpRequest, job_id: int) -> dict[str, Any]:
    _, job = job_for(request, job_id, Perm.VIEW, Scope.READ)
    return schemas.job_out(job, steps=True)


@router.get("/jobs/{job_id}/log", response=schemas.JobLogOut, summary="Log lines after a cursor")
def job_log(request: HttpRequest, job_id: int, after: int = 0, wait: int = 0) -> dict[str, Any]:
    """The log lines with seq > `after`. With `wait` (seconds, at most 25) the answer
    waits until there is a new line or the job ends (long-poll): `rb job logs --follow`
    and `--wait` loop on it with `after=next_after` until `done`."""
    _, job = job_for(request, job_id, Perm.VIEW, Scope.READ)
    deadline = time.monotonic() + max(0, min(wait, LONG_POLL_MAX))
    while True:
        # The state is read before the lines: a job seen final has written all its lines.
        job.refresh_from_db()
        final = job.is_final
        lines = list(JobLogLine.objects.filter(job=job, seq__gt=after).order_by("seq")[:LOG_PAGE])
        if lines or final or time.monotonic() >= deadline:
            break
        time.sleep(LONG_POLL_STEP)
    next_after = lines[-1].seq if lines else after
    return {
        "job": schemas.job_out(job),
        "lines": [{"seq": line.seq, "text": line.text} for line in lines],
        "next_after": next_after,
        "done": final and len(lines) < LOG_PAGE,
    }


SSE_MAX_SECONDS = 600  # then the client reconnects with Last-Event-ID; no request is held forever
SSE_KEEPALIVE = 15


@router.get("/jobs/{job_id}/events", summary="The log as server-sent events", response={200: str})
def job_events(request: HttpRequest, job_id: int, after: int = 0) -> StreamingHttpResponse:
    """`log` events (id = the line's seq, data = {seq, text}) until the job ends, then one
    `end` event with the job. A reconnecting EventSource sends Last-Event-ID and goes on
    from there. Each open stream holds one server thread: scripts use the long-poll."""
    _, job = job_for(request, job_id, Perm.VIEW, Scope.READ)
    last_event = request.headers.get("Last-Event-ID", "")
    cursor = int(last_event) if last_event.isdigit() else after

    def stream(cursor: int) -> Iterator[str]:
        started = idle = time.monotonic()
        while time.monotonic() - started < SSE_MAX_SECONDS:
            job.refresh_from_db()
            final = job.is_final
            lines = list(JobLogLine.objects.filter(job=job, seq__gt=cursor).order_by("seq")[:LOG_PAGE])
            for line in lines:
                cursor = line.seq
                yield f"id: {line.seq}\nevent: log\ndata: {json.dumps({'seq': line.seq, 'text': line.text})}\n\n"
            if final and len(lines) < LOG_PAGE:
                yield f"event: end\ndata: {json.dumps(schemas.job_out(job), default=str)}\n\n"
                return
            if lines:
                idle = time.monotonic()
            elif time.monotonic() - idle > SSE_KEEPALIVE:
                idle = time.monotonic()
                yield ": keep-alive\n\n"
            time.sleep(LONG_POLL_STEP)

    response = StreamingHttpResponse(stream(cursor), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies must not hold the events back
    return response


@router.post("/jobs/{job_id}/cancel", response={202: schemas.JobOut}, summary="Cancel a job")
def job_cancel(request: HttpRequest, job_id: int) -> Status[dict[str, Any]]:
    user, job = job_for(request, job_id, Perm.CANCEL_JOB, Scope.PROMOTE)
    return Status(202, schemas.job_out(services.cancel_job(job, actor=user)))


@router.post("/jobs/{job_id}/retry", response={202: schemas.JobOut}, summary="Retry a failed or cancelled job")
def job_retry(request: HttpRequest, job_id: int) -> Status[dict[str, Any]]:
    user, job = job_for(request, job_id, Perm.RETRY_JOB, Scope.PROMOTE)
    new_job = services.retry_job(job, actor=user, idempotency_key=idempotency_key(request, f"retry:{job.pk}"))
    return Status(202, schemas.job_out(new_job))
