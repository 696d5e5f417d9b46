"""The audit log, for those who may read it."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from releaseboard.audit.models import AuditEvent
from releaseboard.roles import Perm, require
from releaseboard.web.forms import AuditFilterForm

PAGE_SIZE = 50


@login_required
def audit_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Perm.VIEW_AUDIT)
    actions = list(AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct())
    form = AuditFilterForm(request.GET or None, actions=actions)
    events = AuditEvent.objects.order_by("-id")
    if form.is_valid():
        if form.cleaned_data["repository"]:
            events = events.filter(repository_id=form.cleaned_data["repository"].pk)
        if form.cleaned_data["actor"]:
            events = events.filter(actor_name=form.cleaned_data["actor"])
        if form.cleaned_data["action"]:
            events = events.filter(action=form.cleaned_data["action"])
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/audit_list.html", {"form": form, "page": page})
