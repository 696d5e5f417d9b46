"""The policy page of a repository: drift alarms, the lock, freeze windows and hotfix
exceptions. Reading is for every role that sees the board; changes are release managers'."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from releaseboard.policy import guard, rules
from releaseboard.policy import service as policy
from releaseboard.policy.models import DriftAlarm, FreezeWindow, HotfixException, Lock
from releaseboard.refusals import Refused
from releaseboard.releases.models import Promotion, PromotionState, Repository
from releaseboard.roles import Perm, perms_of
from releaseboard.web.access import repository_for


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class AdoptForm(ReasonForm):
    found_sha = forms.CharField(widget=forms.HiddenInput, max_length=40)


class WindowForm(forms.Form):
    weekdays = forms.TypedMultipleChoiceField(
        choices=list(enumerate(rules.WEEKDAYS)), coerce=int, widget=forms.CheckboxSelectMultiple
    )
    start = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}))
    end = forms.TimeField(
        widget=forms.TimeInput(attrs={"type": "time"}), help_text="Not after the start: the window ends the next day."
    )
    time_zone = forms.CharField(max_length=64, initial="UTC", help_text="IANA name, e.g. Europe/Berlin.")
    reason = forms.CharField(max_length=200, required=False)


class ExceptionForm(ReasonForm):
    promotion = forms.IntegerField()


def _done(request: HttpRequest, repository: Repository, change: Callable[[], Any], success: str) -> HttpResponse:
    """Run one policy change; its refusal (or a form error) is shown as a message."""
    try:
        change()
    except Refused as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return redirect("web:policy", repo=repository.name)


def _invalid(request: HttpRequest, repository: Repository, form: forms.Form) -> HttpResponse:
    errors = "; ".join(
        f"{field}: {' '.join(str(m) for m in e)}" if field != "__all__" else " ".join(str(m) for m in e)
        for field, e in form.errors.items()
    )
    messages.error(request, f"Nothing was changed: {errors}")
    return redirect("web:policy", repo=repository.name)


@login_required
def policy_page(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.VIEW)
    now = timezone.now()
    perms = perms_of(request.user)
    exceptions = list(
        HotfixException.objects.filter(promotion__repository=repository).select_related(
            "promotion__branch", "requested_by", "approved_by"
        )[:20]
    )
    context = {
        "repository": repository,
        "alarms": guard.open_alarms(repository),
        "past_alarms": DriftAlarm.objects.filter(repository=repository)
        .exclude(state="open")
        .select_related("resolved_by")[:10],
        "lock": guard.active_lock(repository),
        "past_locks": Lock.objects.filter(repository=repository, lifted_at__isnull=False).select_related(
            "locked_by", "lifted_by"
        )[:5],
        "windows": FreezeWindow.objects.filter(repository=repository),
        "freeze": guard.freeze_now(repository, now),
        "next_freeze": guard.next_freeze(repository, now),
        "exceptions": exceptions,
        "approvable": {e.pk for e in exceptions if policy.may_approve(e, request.user, perms)},
        "hotfix_promotions": Promotion.objects.filter(
            repository=repository,
            branch__kind="hotfix",
            state__in=PromotionState.active(),
            policy_exceptions__isnull=True,
        ).select_related("branch"),
        "window_form": WindowForm(),
    }
    return render(request, "web/policy.html", context)


@login_required
@require_POST
def drift_adopt(request: HttpRequest, repo: str, alarm_id: int) -> HttpResponse:
    repository = repository_for(request, repo, Perm.PROMOTE)
    alarm = get_object_or_404(DriftAlarm, pk=alarm_id, repository=repository)
    form = AdoptForm(request.POST)
    if not form.is_valid():
        return _invalid(request, repository, form)
    return _done(
        request,
        repository,
        lambda: policy.adopt_head(
            alarm, actor=request.user, reason=form.cleaned_data["reason"], found_sha=form.cleaned_data["found_sha"]
        ),
        f"Adopted the new {alarm.branch_name} head; promotions into it may go ahead.",
    )


@login_required
@require_POST
def policy_lock(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.PROMOTE)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _invalid(request, repository, form)
    return _done(
        request,
        repository,
        lambda: policy.lock(repository, actor=request.user, reason=form.cleaned_data["reason"]),
        f"{repository.name} is locked: promotions stop until the lock is lifted.",
    )


@login_required
@require_POST
def policy_unlock(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.PROMOTE)
    return _done(
        request,
        repository,
        lambda: policy.unlock(repository, actor=request.user),
        f"The lock on {repository.name} is lifted.",
    )


@login_required
@require_POST
def window_add(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.PROMOTE)
    form = WindowForm(request.POST)
    if not form.is_valid():
        return _invalid(request, repository, form)
    data = form.cleaned_data
    return _done(
        request,
        repository,
        lambda: policy.add_window(
            repository,
            actor=request.user,
            weekdays=data["weekdays"],
            start=data["start"],
            end=data["end"],
            time_zone=data["time_zone"].strip(),
            reason=data["reason"],
        ),
        "Freeze window added.",
    )


@login_required
@require_POST
def window_remove(request: HttpRequest, repo: str, window_id: int) -> HttpResponse:
    repository = repository_for(request, repo, Perm.PROMOTE)
    window = get_object_or_404(FreezeWindow, pk=window_id, repository=repository)
    return _done(
        request, repository, lambda: policy.remove_window(window, actor=request.user), "Freeze window removed."
    )


@login_required
@require_POST
def exception_request(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.PROMOTE)
    form = ExceptionForm(request.POST)
    if not form.is_valid():
        return _invalid(request, repository, form)
    promotion = get_object_or_404(
        Promotion.objects.select_related("branch", "repository"),
        pk=form.cleaned_data["promotion"],
        repository=repository,
    )
    return _done(
        request,
        repository,
        lambda: policy.request_exception(promotion, actor=request.user, reason=form.cleaned_data["reason"]),
        "Exception requested; a second release manager must approve it.",
    )


@login_required
@require_POST
def exception_approve(request: HttpRequest, repo: str, exception_id: int) -> HttpResponse:
    repository = repository_for(request, repo, Perm.PROMOTE)
    exception = get_object_or_404(HotfixException, pk=exception_id, promotion__repository=repository)
    return _done(
        request,
        repository,
        lambda: policy.approve_exception(exception, actor=request.user),
        "Exception approved: the hotfix may pass the lock or freeze.",
    )
