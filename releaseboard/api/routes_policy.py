"""Stopping the line: locks, freeze windows, hotfix exceptions, and adopting a drifted
head. The same policy services as the Policy page; release managers only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import Http404, HttpRequest
from ninja import Field, Router, Schema, Status

from releaseboard.policy import guard
from releaseboard.policy import service as policy
from releaseboard.policy.models import DriftAlarm, FreezeWindow, HotfixException, Lock
from releaseboard.releases.models import Promotion
from releaseboard.roles import Perm
from releaseboard.tokens.models import Scope

from .access import repository_for

router = Router(tags=["policy"])


class LockOut(Schema):
    id: int
    reason: str
    locked_by: str | None
    locked_at: dt.datetime


class WindowOut(Schema):
    id: int
    weekdays: list[int] = Field(..., description="0 = Monday … 6 = Sunday")
    start: dt.time
    end: dt.time
    time_zone: str
    reason: str


class FreezeOut(Schema):
    starts_at: dt.datetime
    ends_at: dt.datetime


class AlarmOut(Schema):
    id: int
    branch: str
    expected_sha: str
    found_sha: str
    commits: list[Any]
    detected_at: dt.datetime


class ExceptionOut(Schema):
    id: int
    promotion_id: int
    reason: str
    requested_by: str | None
    approved_by: str | None
    approved_at: dt.datetime | None


class PolicyOut(Schema):
    lock: LockOut | None
    freeze_now: FreezeOut | None
    next_freeze: FreezeOut | None
    windows: list[WindowOut]
    drift_alarms: list[AlarmOut]
    exceptions: list[ExceptionOut]


class ReasonIn(Schema):
    reason: str = Field(..., max_length=2000)


class WindowIn(Schema):
    weekdays: list[int]
    start: dt.time
    end: dt.time
    time_zone: str
    reason: str = ""


class ExceptionIn(Schema):
    promotion: int
    reason: str


class AdoptIn(Schema):
    reason: str
    found_sha: str = Field(..., description="the head you reviewed; refused if the branch moved again since")


def _name(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def _lock(lock: Lock) -> dict[str, Any]:
    return {"id": lock.pk, "reason": lock.reason, "locked_by": _name(lock.locked_by), "locked_at": lock.locked_at}


def _window(w: FreezeWindow) -> dict[str, Any]:
    return {f: getattr(w, f) for f in WindowOut.model_fields}


def _freeze(occurrence: Any) -> dict[str, Any] | None:
    return {"starts_at": occurrence.starts_at, "ends_at": occurrence.ends_at} if occurrence else None


def _exception(e: HotfixException) -> dict[str, Any]:
    return {
        "id": e.pk,
        "promotion_id": e.promotion_id,
        "reason": e.reason,
        "requested_by": _name(e.requested_by),
        "approved_by": _name(e.approved_by),
        "approved_at": e.approved_at,
    }


@router.get("/repos/{repo}/policy", response=PolicyOut, summary="Lock, freeze windows, drift alarms, exceptions")
def policy_detail(request: HttpRequest, repo: str) -> dict[str, Any]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    lock = guard.active_lock(repository)
    exceptions = HotfixException.objects.filter(promotion__repository=repository).select_related(
        "requested_by", "approved_by"
    )[:50]
    return {
        "lock": _lock(lock) if lock else None,
        "freeze_now": _freeze(guard.freeze_now(repository)),
        "next_freeze": _freeze(guard.next_freeze(repository)),
        "windows": [_window(w) for w in FreezeWindow.objects.filter(repository=repository)],
        "drift_alarms": [
            {
                "id": a.pk,
                "branch": a.branch_name,
                "expected_sha": a.expected_sha,
                "found_sha": a.found_sha,
                "commits": a.commits,
                "detected_at": a.detected_at,
            }
            for a in guard.open_alarms(repository)
        ],
        "exceptions": [_exception(e) for e in exceptions],
    }


@router.post("/repos/{repo}/lock", response={201: LockOut}, summary="Stop the line")
def lock(request: HttpRequest, repo: str, body: ReasonIn) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.PROMOTE, Scope.PROMOTE)
    return Status(201, _lock(policy.lock(repository, actor=user, reason=body.reason)))


@router.post("/repos/{repo}/unlock", response=LockOut, summary="Lift the lock")
def unlock(request: HttpRequest, repo: str) -> dict[str, Any]:
    user, repository = repository_for(request, repo, Perm.PROMOTE, Scope.PROMOTE)
    return _lock(policy.unlock(repository, actor=user))


@router.post("/repos/{repo}/freeze-windows", response={201: WindowOut}, summary="Add a freeze window")
def window_add(request: HttpRequest, repo: str, body: WindowIn) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.PROMOTE, Scope.PROMOTE)
    window = policy.add_window(
        repository,
        actor=user,
        weekdays=body.weekdays,
        start=body.start,
        end=body.end,
        time_zone=body.time_zone.strip(),
        reason=body.reason,
    )
    return Status(201, _window(window))


@router.delete("/repos/{repo}/freeze-windows/{window_id}", response={204: None}, summary="Remove a freeze window")
def window_remove(request: HttpRequest, repo: str, window_id: int) -> Status[None]:
    user, repository = repository_for(request, repo, Perm.PROMOTE, Scope.PROMOTE)
    window = FreezeWindow.objects.filter(pk=window_id, repository=repository).first()
    if window is None:
        raise Http404(f"{repository.name} has no freeze window #{window_id}.")
    policy.remove_window(window, actor=user)
    return Status(204, None)


@router.post("/repos/{repo}/exceptions", response={201: ExceptionOut}, summary="Ask to let a hotfix through")
def exception_request(request: HttpRequest, repo: str, body: ExceptionIn) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.PROMOTE, Scope.PROMOTE)
    promotion = (
        Promotion.objects.select_related("branch", "repository")
        .filter(pk=body.promotion, repository=repository)
        .first()
    )
    if promotion is None:
        raise Http404(f"{repository.name} has no promotion #{body.promotion}.")
    return Status(201, _exception(policy.request_exception(promotion, actor=user, reason=body.reason)))


@router.post("/repos/{repo}/exceptions/{exception_id}/approve", response=ExceptionOut, summary="Approve an exception")
def exception_approve(request: HttpRequest, repo: str, exception_id: int) -> dict[str, Any]:
    user, repository = repository_for(request, repo, Perm.PROMOTE, Scope.PROMOTE)
    exception = HotfixException.objects.filter(pk=exception_id, promotion__repository=repository).first()
    if exception is None:
        raise Http404(f"{repository.name} has no exception #{exception_id}.")
    return _exception(policy.approve_exception(exception, actor=user))


@router.post("/repos/{repo}/drift/{alarm_id}/adopt", response=AlarmOut, summary="Adopt a head moved outside")
def drift_adopt(request: HttpRequest, repo: str, alarm_id: int, body: AdoptIn) -> dict[str, Any]:
    user, repository = repository_for(request, repo, Perm.PROMOTE, Scope.PROMOTE)
    alarm = DriftAlarm.objects.filter(pk=alarm_id, repository=repository).first()
    if alarm is None:
        raise Http404(f"{repository.name} has no drift alarm #{alarm_id}.")
    alarm = policy.adopt_head(alarm, actor=user, reason=body.reason, found_sha=body.found_sha)
    return {
        "id": alarm.pk,
        "branch": alarm.branch_name,
        "expected_sha": alarm.expected_sha,
        "found_sha": alarm.found_sha,
        "commits": alarm.commits,
        "detected_at": alarm.detected_at,
    }
