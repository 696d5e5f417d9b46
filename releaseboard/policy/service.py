"""Policy use cases. Each is one transaction with one audit event; release managers only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import time
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from releaseboard.audit.service import record as audit_record
from releaseboard.branching import BranchKind
from releaseboard.policy import rules
from releaseboard.policy.guard import reset_since
from releaseboard.policy.models import DriftAlarm, DriftState, FreezeWindow, HotfixException, Lock
from releaseboard.refusals import Refused
from releaseboard.releases.models import Promotion, PromotionState, Repository
from releaseboard.roles import Perm, perms_of, require


def _name(user: Any) -> str:
    return user.get_username() if user is not None else "releaseboard"


def adopt_head(alarm: DriftAlarm, *, actor: Any, reason: str, found_sha: str) -> DriftAlarm:
    """Accept a head that moved outside Releaseboard, after review. `found_sha` is the head
    the release manager reviewed: if the branch moved again since, they review again."""
    require(actor, Perm.PROMOTE)
    if not reason.strip():
        raise Refused("Say why the new head is acceptable (what you reviewed).", field="reason")
    with transaction.atomic():
        alarm = DriftAlarm.objects.select_for_update(of=("self",)).select_related("repository").get(pk=alarm.pk)
        if alarm.state != DriftState.OPEN or reset_since(alarm):
            raise Refused(f"This alarm on {alarm.branch_name} is already resolved.")
        if found_sha != alarm.found_sha:
            raise Refused(
                f"{alarm.branch_name} moved again (now {alarm.found_sha[:10]}); review the new commits and adopt again."
            )
        alarm.state, alarm.resolved_by, alarm.resolved_at = DriftState.ADOPTED, actor, timezone.now()
        alarm.reason = reason.strip()
        alarm.save(update_fields=["state", "resolved_by", "resolved_at", "reason"])
        audit_record(
            "drift.adopted",
            actor=actor,
            repository=alarm.repository,
            obj=alarm,
            from_sha=alarm.expected_sha,
            to_sha=alarm.found_sha,
            message=alarm.reason,
            details={
                "branch": alarm.branch_name,
                "authors": alarm.authors,
                "commits": [c["sha"] for c in alarm.commits[:20]],
            },
        )
    return alarm


def lock(repository: Repository, *, actor: Any, reason: str) -> Lock:
    """ "Stop the line": refuse promotions to staging and master until the lock is lifted."""
    require(actor, Perm.PROMOTE)
    if not reason.strip():
        raise Refused("Say why the line stops.", field="reason")
    try:
        with transaction.atomic():
            if Lock.objects.filter(repository=repository, lifted_at__isnull=True).exists():
                raise Refused(f"{repository.name} is already locked.")
            row = Lock.objects.create(
                repository=repository, reason=reason.strip(), locked_by=actor, locked_at=timezone.now()
            )
            audit_record("policy.locked", actor=actor, repository=repository, obj=row, message=row.reason)
    except IntegrityError:
        raise Refused(f"{repository.name} is already locked.") from None
    return row


def unlock(repository: Repository, *, actor: Any) -> Lock:
    """Lift the lock: promotions may go ahead again (unless a freeze window is on)."""
    require(actor, Perm.PROMOTE)
    with transaction.atomic():
        row = Lock.objects.select_for_update().filter(repository=repository, lifted_at__isnull=True).first()
        if row is None:
            raise Refused(f"{repository.name} is not locked.")
        row.lifted_by, row.lifted_at = actor, timezone.now()
        row.save(update_fields=["lifted_by", "lifted_at"])
        audit_record(
            "policy.unlocked",
            actor=actor,
            repository=repository,
            obj=row,
            details={"locked_by": _name(row.locked_by), "reason": row.reason[:500]},
        )
    return row


def add_window(
    repository: Repository,
    *,
    actor: Any,
    weekdays: Iterable[int],
    start: time,
    end: time,
    time_zone: str,
    reason: str = "",
) -> FreezeWindow:
    """Define a recurring freeze window (weekdays and a local time range in a time zone)."""
    require(actor, Perm.PROMOTE)
    days = sorted({int(d) for d in weekdays})
    if not days or any(d < 0 or d > 6 for d in days):
        raise Refused("Choose at least one weekday.", field="weekdays")
    if not rules.valid_zone(time_zone):
        raise Refused(f"\u201c{time_zone}\u201d is not an IANA time zone (e.g. Europe/Berlin).", field="time_zone")
    with transaction.atomic():
        window = FreezeWindow.objects.create(
            repository=repository,
            weekdays=days,
            start=start,
            end=end,
            time_zone=time_zone,
            reason=reason.strip()[:200],
            created_by=actor,
        )
        audit_record(
            "policy.freeze_window_added",
            actor=actor,
            repository=repository,
            obj=window,
            message=window.reason,
            details={"window": str(window)},
        )
    return window


def remove_window(window: FreezeWindow, *, actor: Any) -> None:
    require(actor, Perm.PROMOTE)
    with transaction.atomic():
        described, repository = str(window), window.repository
        audit_record(
            "policy.freeze_window_removed",
            actor=actor,
            repository=repository,
            obj=window,
            details={"window": described},
        )
        window.delete()


def request_exception(promotion: Promotion, *, actor: Any, reason: str) -> HotfixException:
    """Ask to let a hotfix through a lock or freeze; a second release manager must approve."""
    require(actor, Perm.PROMOTE)
    if promotion.branch.kind != BranchKind.HOTFIX.value:
        raise Refused("Only hotfixes may pass a lock or freeze; features wait until it ends.")
    if promotion.state not in (*PromotionState.active(), PromotionState.PROMOTED):
        raise Refused(f"Promotion #{promotion.pk} is {promotion.get_state_display().lower()}.")
    if not reason.strip():
        raise Refused("Say why this hotfix cannot wait.", field="reason")
    with transaction.atomic():
        if HotfixException.objects.filter(promotion=promotion).exists():
            raise Refused(f"Promotion #{promotion.pk} already has an exception request.")
        row = HotfixException.objects.create(
            promotion=promotion, reason=reason.strip(), requested_by=actor, requested_at=timezone.now()
        )
        audit_record(
            "policy.exception_requested",
            actor=actor,
            repository=promotion.repository,
            obj=promotion,
            message=row.reason,
        )
    return row


def may_approve(exception: HotfixException, actor: Any, perms: set[Perm] | None = None) -> bool:
    """Whether `actor` may approve: a release manager who did not ask for it (four eyes)."""
    perms = perms_of(actor) if perms is None else perms
    return Perm.PROMOTE in perms and not exception.approved and exception.requested_by_id != getattr(actor, "pk", None)


def approve_exception(exception: HotfixException, *, actor: Any) -> HotfixException:
    """The second release manager's approval; never the one who asked."""
    require(actor, Perm.PROMOTE)
    with transaction.atomic():
        row = (
            HotfixException.objects.select_for_update(of=("self",))
            .select_related("promotion__repository", "requested_by")
            .get(pk=exception.pk)
        )
        if row.approved:
            raise Refused("This exception is already approved.")
        if row.requested_by_id == getattr(actor, "pk", None):
            raise Refused("You asked for this exception; a second release manager must approve it.")
        row.approved_by, row.approved_at = actor, timezone.now()
        row.save(update_fields=["approved_by", "approved_at"])
        audit_record(
            "policy.exception_approved",
            actor=actor,
            repository=row.promotion.repository,
            obj=row.promotion,
            message=row.reason,
            details={"requested_by": _name(row.requested_by), "approved_by": _name(actor)},
        )
    return row
