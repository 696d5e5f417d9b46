"""Jobs: the list, a job's page, its live log, and cancelling it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from releaseboard.jobs.models import Job, JobState
from releaseboard.releases import selectors, services
from releaseboard.roles import Perm, require
from releaseboard.web.access import job_for
from releaseboard.web.actions import act
from releaseboard.web.forms import JobFilterForm, posted_key
from releaseboard.web.presenters import live_log, subject_url
from releaseboard.web.requests import HtmxHttpRequest

PAGE_SIZE = 50


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Perm.VIEW)
    form = JobFilterForm(request.GET or None)
    jobs = Job.objects.select_related("created_by").order_by("-id")
    if form.is_valid():
        if form.cleaned_data["repository"]:
            jobs = jobs.filter(scope_id=form.cleaned_data["repository"].pk)
        if form.cleaned_data["state"]:
            jobs = jobs.filter(state=form.cleaned_data["state"])
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/job_list.html", {"form": form, "page": page})


@login_required
def job_detail(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = job_for(request, job_id, Perm.VIEW)
    heartbeat_age = None
    if job.state == JobState.RUNNING and job.heartbeat_at is not None:
        heartbeat_age = int((timezone.now() - job.heartbeat_at).total_seconds())
    context: dict[str, Any] = {
        "job": job,
        "steps": job.steps.all(),
        "heartbeat_age": heartbeat_age,
        "subject_url": subject_url(job),
        "retryable": services.is_retryable(job),
    }
    # The summary polls itself while the job runs (steps, heartbeat, final message).
    if request.htmx:
        return render(request, "web/job_detail.html#summary", context)
    context["log"] = live_log(job)
    return render(request, "web/job_detail.html", context)


@login_required
def job_log(request: HttpRequest, job_id: int) -> HttpResponse:
    """The log lines after the cursor `?after=`, plus a poller for the next ones while
    the job runs. htmx replaces the old poller with this fragment."""
    job = job_for(request, job_id, Perm.VIEW)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    log = live_log(job, after)
    html = render_to_string("web/job_detail.html#log-chunk", {"log": log, "oob": True}, request=request)
    if log["polling"] or log["has_lines"]:
        # Final lines still go out with 200: not every htmx version swaps a 286.
        return HttpResponse(html)
    # Nothing new and the job has ended: stop the poller. The body (only the out-of-band
    # state badge) is harmless whether or not this htmx version swaps it.
    return HttpResponseStopPolling(html)


@login_required
def job_attention(request: HttpRequest) -> HttpResponse:
    """Jobs a release manager should look at: stuck, unpublished, or failed recently."""
    require(request.user, Perm.RETRY_JOB)
    attention = selectors.jobs_needing_attention(
        timezone.now(), heartbeat_grace=3 * settings.JOB_HEARTBEAT_SECONDS, publish_grace=settings.JOB_REPUBLISH_SECONDS
    )
    return render(request, "web/job_attention.html", {"attention": attention, "retryable": services.RETRYABLE_KINDS})


@login_required
@require_POST
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    job = job_for(request, job_id, Perm.RETRY_JOB)
    return act(
        request,
        lambda: services.retry_job(job, actor=request.user, idempotency_key=posted_key(request.POST)),
        back=lambda: redirect("web:job_detail", job_id=job.pk),
        then=lambda new_job: redirect("web:job_detail", job_id=new_job.pk),
        success=lambda new_job: f"Retrying as job #{new_job.pk}.",
    )


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = job_for(request, job_id, Perm.CANCEL_JOB)
    return act(
        request,
        lambda: services.cancel_job(job, actor=request.user),
        back=lambda: redirect("web:job_detail", job_id=job.pk),
        success=lambda done: (
            f"Job #{done.pk} cancelled before it started."
            if done.is_final
            else f"Job #{done.pk} was asked to stop; it stops at its next check."
        ),
    )
