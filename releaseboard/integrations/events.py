"""Which audit events become webhook events, and what a webhook event says.

The audit log already records every state change with who, what, where and the SHAs:
a webhook event is an audit event of an interesting kind, renamed to the public event
name and given a link back to Releaseboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releaseboard.audit.models import AuditEvent

# Public event names, in the order the subscription form lists them.
EVENTS: dict[str, str] = {
    "branch.requested": "A branch was requested",
    "branch.created": "A branch was created on the remote",
    "promotion.requested": "A promotion was requested",
    "promotion.tested": "A promotion's merge result was tested (passed or failed)",
    "promotion.conflicted": "A promotion conflicts with staging",
    "promotion.promoted": "A promotion landed on staging",
    "release.created": "A release was tagged and master moved",
    "drift.raised": "Master or staging moved outside Releaseboard",
    "drift.adopted": "A drift alarm was resolved",
    "policy.changed": "A lock, freeze window or hotfix exception changed",
    "job.needs_attention": "A job failed and needs a person",
    "test.event": "A test event sent from the webhooks page",
}

_DIRECT = {
    "branch.requested": "branch.requested",
    "branch.created": "branch.created",
    "promotion.requested": "promotion.requested",
    "promotion.merge_conflict": "promotion.conflicted",
    "promotion.promoted": "promotion.promoted",
    "promotion.reconciled": "promotion.promoted",
    "release.released": "release.created",
    "drift.detected": "drift.raised",
    "drift.adopted": "drift.adopted",
    "drift.reset": "drift.adopted",
}
# Failures no retry by Releaseboard will fix (a stale worker is retried by the reaper first).
_ATTENTION_RESULTS = {"too_many_attempts", "error", "git_error", "timed_out"}


@dataclass(frozen=True)
class WebhookEvent:
    type: str
    repository_id: int | None
    audit_seq: int | None
    payload: dict[str, Any]


def event_type_for(event: AuditEvent) -> str | None:
    """The public event name for an audit event, or None if no webhook wants it."""
    if event.action in _DIRECT:
        return _DIRECT[event.action]
    if event.action.startswith("test.") and event.object_type == "promotion":
        return "promotion.tested"
    if event.action.startswith("policy."):
        return "policy.changed"
    if event.action == "job.failed" and event.result in _ATTENTION_RESULTS:
        return "job.needs_attention"
    return None


def from_audit(event: AuditEvent, event_type: str) -> WebhookEvent:
    data: dict[str, Any] = {
        "repository": event.repository_name or None,
        "actor": event.actor_name,
        "action": event.action,
        "object": {"type": event.object_type, "id": event.object_id, "name": event.object_repr}
        if event.object_type
        else None,
        "from_sha": event.from_sha or None,
        "to_sha": event.to_sha or None,
        "result": event.result,
        "message": event.message,
        "audit_seq": event.seq,
    }
    payload = {"type": event_type, "timestamp": event.created_at.isoformat(), "data": data}
    return WebhookEvent(event_type, event.repository_id, event.seq, payload)
