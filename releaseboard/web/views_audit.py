"""The audit log, for those who may read it: the list, its verification, exports."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from releaseboard.audit import checkpoint, export, runs, selectors
from releaseboard.audit.models import AuditEvent, Checkpoint
from releaseboard.audit.verify import verify_recent
from releaseboard.roles import Perm, require
from releaseboard.web.forms import AuditFilterForm
from releaseboard.web.requests import HtmxHttpRequest

PAGE_SIZE = 50


class AuditQueryForm(AuditFilterForm):
    """The list's filters plus a date range and the keyset cursor."""

    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def event_filter(self) -> selectors.EventFilter:
        data = self.cleaned_data if self.is_bound else {}
        repository = data.get("repository")
        return selectors.EventFilter(
            repository_id=repository.pk if repository is not None else None,
            actor=data.get("actor") or "",
            action=data.get("action") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )


def _query_form(request: HttpRequest) -> AuditQueryForm:
    return AuditQueryForm(request.GET or None, actions=selectors.actions())


@login_required
def audit_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Perm.VIEW_AUDIT)
    form = _query_form(request)
    if form.is_bound and not form.is_valid():
        page: selectors.EventPage[AuditEvent] = selectors.EventPage(items=[], newer_after=None, older_before=None)
    else:
        data = form.cleaned_data if form.is_bound else {}
        page = selectors.page_of_events(
            form.event_filter(), before=data.get("before"), after=data.get("after"), size=PAGE_SIZE
        )
    return render(request, "web/audit_list.html", {"form": form, "page": page})


def _export(
    request: HttpRequest, lines: Any, content_type: str, extension: str
) -> HttpResponse | StreamingHttpResponse:
    require(request.user, Perm.VIEW_AUDIT)
    form = _query_form(request)
    if form.is_bound and not form.is_valid():
        # Never fall back to "everything" when the filters could not be read.
        return HttpResponseBadRequest(f"The filters are not valid: {form.errors.as_text()}", content_type="text/plain")
    response = StreamingHttpResponse(lines(form.event_filter().events()), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{extension}"'
    return response


@login_required
def audit_export_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    return _export(request, export.csv_lines, "text/csv; charset=utf-8", "csv")


@login_required
def audit_export_jsonl(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    return _export(request, export.jsonl_lines, "application/jsonl; charset=utf-8", "jsonl")


@login_required
def audit_verify(request: HtmxHttpRequest) -> HttpResponse:
    require(request.user, Perm.VIEW_AUDIT)
    run = runs.latest()
    context: dict[str, Any] = {"run": run, "run_stalled": run is not None and runs.is_stalled(run)}
    if request.htmx and request.GET.get("fragment") == "run":
        # The poller of a running full verification: only its progress box.
        response = render(request, "web/audit_verify.html#full-run", context)
        if run is not None and run.is_active:
            return response
        return HttpResponseStopPolling(response.content)
    context["report"] = verify_recent()
    context["recorded"] = Checkpoint.objects.all()[:20]
    return render(request, "web/audit_verify.html", context)


@login_required
@require_POST
def audit_verify_full(request: HttpRequest) -> HttpResponse:
    require(request.user, Perm.VIEW_AUDIT)
    run, created = runs.request(requested_by=request.user.get_username())
    if created:
        messages.success(request, "Full verification started; its progress is shown below.")
    else:
        messages.info(request, f"A full verification is already running (#{run.pk}); its progress is shown below.")
    return redirect("web:audit_verify")


@login_required
@require_POST
def audit_checkpoint(request: HttpRequest) -> HttpResponse:
    require(request.user, Perm.VIEW_AUDIT)
    try:
        written = checkpoint.write(created_by=request.user.get_username())
    except checkpoint.CheckpointRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"Signed checkpoint at seq {written.seq} ({written.count} events) written to {written.file_name}."
        )
    return redirect("web:audit_verify")
