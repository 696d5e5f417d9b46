"""What a promotion's outcome writes, from whichever job sees it first: landed on staging
(the promote job, or a sync reconciling an earlier push) or failed; and the message of
its merge commit, which any worker rebuilds identically."""

from __future__ import annotations

from django.utils import timezone

from releaseboard.audit.service import record as audit_record
from releaseboard.jobs.models import Job
from releaseboard.releases.models import Branch, BranchState, Promotion, PromotionState


def merge_message(promotion: Promotion) -> str:
    requester = promotion.requested_by.get_username() if promotion.requested_by else "unknown"
    body = f"\n\n{promotion.description.strip()}" if promotion.description.strip() else ""
    return (
        f"Promote {promotion.branch.name} to {promotion.repository.staging_branch} (#{promotion.pk})\n\n"
        f"{promotion.title}{body}\n\nRequested-by: {requester}\n{promotion.trailer}\n"
    )


def record_promoted(promotion: Promotion, *, before: str, action: str = "promotion.promoted") -> bool:
    """Mark a landed promotion, once: a reconciling sync and the promote job may both
    see it land, and only the first writes the change and its audit event."""
    changed = (
        Promotion.objects.filter(pk=promotion.pk)
        .exclude(state=PromotionState.PROMOTED)
        .update(
            state=PromotionState.PROMOTED,
            promoted_sha=promotion.merge_sha,
            promoted_at=timezone.now(),
            state_message="",
        )
    )
    if not changed:
        return False
    Branch.objects.filter(pk=promotion.branch_id).update(state=BranchState.PROMOTED)
    audit_record(
        action,
        actor=promotion.promoted_by,
        repository=promotion.repository,
        obj=promotion,
        from_sha=before,
        to_sha=promotion.merge_sha,
    )
    return True


def fail_promotion(job: Job) -> None:
    promotion = Promotion.objects.filter(pk=job.params.get("promotion"), state=PromotionState.PROMOTING).first()
    if promotion is not None:
        promotion.state = PromotionState.FAILED
        promotion.state_message = job.message
        promotion.save(update_fields=["state", "state_message"])
        audit_record(
            "promotion.failed",
            actor=None,
            repository=promotion.repository,
            obj=promotion,
            result=job.reason,
            message=job.message[:1000],
        )
