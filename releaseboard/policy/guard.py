"""Read-only checks: may a promotion or a release go ahead now under the repository's
policy (drift alarms, lock, freeze windows, hotfix exceptions)?

Each returns "" when allowed, or a refusal for people: what, why, what to do next.
services call them when a promotion is asked for, runners again right before the push,
so a lock or freeze that began while the job waited still stops it.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from releaseboard.audit.models import AuditEvent
from releaseboard.branching import BranchKind
from releaseboard.policy import rules
from releaseboard.policy.models import DriftAlarm, DriftState, FreezeWindow, HotfixException, Lock
from releaseboard.releases.models import Promotion, PromotionState, Repository


def reset_since(alarm: DriftAlarm) -> bool:
    """Whether staging was copied from master (by Releaseboard) after the alarm was raised."""
    repository = alarm.repository
    return (
        alarm.branch_name == repository.staging_branch
        and AuditEvent.objects.filter(
            repository_id=repository.pk, action="staging.copied", seq__gt=alarm.detected_seq
        ).exists()
    )


def open_alarms(repository: Repository, branch_name: str | None = None) -> list[DriftAlarm]:
    """Drift alarms in force: open, and for staging not reset by a copy of master since."""
    alarms = DriftAlarm.objects.filter(repository=repository, state=DriftState.OPEN).select_related("repository")
    if branch_name is not None:
        alarms = alarms.filter(branch_name=branch_name)
    return [a for a in alarms if not reset_since(a)]


def active_lock(repository: Repository) -> Lock | None:
    return Lock.objects.filter(repository=repository, lifted_at__isnull=True).select_related("locked_by").first()


def freeze_now(repository: Repository, now: datetime | None = None) -> rules.Occurrence | None:
    windows = [w.as_rule() for w in FreezeWindow.objects.filter(repository=repository)]
    return rules.current(windows, now or timezone.now())


def next_freeze(repository: Repository, now: datetime | None = None) -> rules.Occurrence | None:
    windows = [w.as_rule() for w in FreezeWindow.objects.filter(repository=repository)]
    return rules.upcoming(windows, now or timezone.now())


def stop_reason(repository: Repository, now: datetime | None = None) -> str:
    """Why promotions of this repository are stopped now (a lock or a freeze), or ""."""
    lock = active_lock(repository)
    if lock is not None:
        who = lock.locked_by.get_username() if lock.locked_by else "a release manager"
        return f"{repository.name} is locked by {who}: \u201c{lock.reason}\u201d."
    freeze = freeze_now(repository, now)
    if freeze is not None:
        return f"{repository.name} is in a freeze window until {freeze.ends_at:%Y-%m-%d %H:%M} UTC."
    return ""


def _drift_refusal(alarm: DriftAlarm) -> str:
    # A rewind or a deletion brings no commit of anyone: then there is nobody to name.
    who = f"by {', '.join(alarm.authors)}" if alarm.authors else "no new commits"
    fix = " or copy master to staging" if alarm.branch_name == alarm.repository.staging_branch else ""
    return (
        f"{alarm.branch_name} was changed outside Releaseboard ({alarm.expected_sha[:10] or 'none'} \u2192 "
        f"{alarm.found_sha[:10] or 'deleted'}, {who}). Promotions into it stop until a release manager reviews "
        f"the change and adopts it on the policy page{fix}."
    )


def has_approved_exception(promotion: Promotion) -> bool:
    return (
        promotion.branch.kind == BranchKind.HOTFIX.value
        and HotfixException.objects.filter(promotion=promotion, approved_at__isnull=False).exists()
    )


def promotion_refusal(promotion: Promotion, now: datetime | None = None) -> str:
    """Why this promotion may not go to staging now, or ""."""
    repository = promotion.repository
    for alarm in open_alarms(repository, repository.staging_branch):
        return _drift_refusal(alarm)
    stop = stop_reason(repository, now)
    if stop and not has_approved_exception(promotion):
        return (
            f"{stop} Promotions wait until it ends. A hotfix may pass if one release manager asks for an "
            "exception on the policy page and a second one approves it."
        )
    return ""


def release_refusal(repository: Repository, now: datetime | None = None) -> str:
    """Why staging may not be released to master now, or "".

    A drift alarm on staging refuses it too: it would ship commits nobody reviewed.
    During a lock or freeze a release passes only if everything it ships is a hotfix
    with an approved exception.
    """
    names = (repository.master_branch, repository.staging_branch)
    alarms = sorted(
        (a for a in open_alarms(repository) if a.branch_name in names), key=lambda a: names.index(a.branch_name)
    )
    for alarm in alarms:
        return _drift_refusal(alarm)
    stop = stop_reason(repository, now)
    if not stop:
        return ""
    shipping = list(
        Promotion.objects.filter(repository=repository, state=PromotionState.PROMOTED).select_related("branch")
    )
    if shipping and all(has_approved_exception(p) for p in shipping):
        return ""
    return f"{stop} Releases wait until it ends; only hotfixes with an approved exception may be released during it."
