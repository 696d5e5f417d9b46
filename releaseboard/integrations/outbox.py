"""Deliveries: written with the event that causes them, sent by a worker, retried with
backoff for about a day, each attempt recorded."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from releaseboard.audit.models import AuditEvent
from releaseboard.audit.service import record as audit_record
from releaseboard.integrations import events, formats, outbound, signing
from releaseboard.integrations.models import Delivery, DeliveryState, Subscription

log = logging.getLogger(__name__)

# Seconds to wait after each failed attempt: nine attempts over about 28 hours.
BACKOFF = (5, 60, 300, 1800, 7200, 18000, 36000, 36000)
# Longer waits are left to the periodic sweep rather than held as delayed broker messages.
MAX_COUNTDOWN = 300
# An attempt that has said nothing for this long lost its worker: it is tried again.
STUCK_AFTER = dt.timedelta(minutes=2)


def on_audit_event(sender: Any, event: AuditEvent, **kwargs: Any) -> None:
    """Queue a delivery for each active subscription that wants this event, in the
    transaction that wrote the event (so no event is lost and none is sent for a change
    that rolled back)."""
    event_type = events.event_type_for(event)
    if event_type is None:
        return
    scope = Q(repository__isnull=True)
    if event.repository_id is not None:
        scope |= Q(repository_id=event.repository_id)
    wanted = [s for s in Subscription.objects.filter(scope, active=True) if event_type in s.events]
    if wanted:
        webhook_event = events.from_audit(event, event_type)
        for subscription in wanted:
            enqueue(subscription, webhook_event)


def enqueue(subscription: Subscription, event: events.WebhookEvent) -> Delivery:
    delivery = Delivery.objects.create(
        subscription=subscription,
        message_id=f"msg_{uuid.uuid4().hex}",
        event_type=event.type,
        audit_seq=event.audit_seq,
        body=formats.body(subscription.format, event),
    )
    delivery_id = delivery.pk
    transaction.on_commit(lambda: publish(delivery_id))
    return delivery


def publish(delivery_id: int, countdown: float = 0) -> None:
    from releaseboard.integrations.tasks import deliver_task

    try:
        if countdown:
            deliver_task.apply_async(args=(delivery_id,), countdown=countdown)
        else:
            deliver_task.apply_async(args=(delivery_id,))
    except Exception as exc:  # broker down: the periodic sweep sends it later
        log.warning("could not publish webhook delivery %s: %s", delivery_id, exc)


def deliver(delivery_id: int) -> Delivery | None:
    """One attempt: claim the delivery, sign, send through the guard, record the answer
    and decide what comes next."""
    now = timezone.now()
    claimed = Delivery.objects.filter(pk=delivery_id, state=DeliveryState.PENDING, next_attempt_at__lte=now).update(
        state=DeliveryState.SENDING, last_attempt_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("subscription").get(pk=delivery_id)
    subscription = delivery.subscription
    if not subscription.active:
        Delivery.objects.filter(pk=delivery_id).update(
            state=DeliveryState.FAILED, error=f"Not sent: the subscription is disabled. {subscription.disabled_reason}"
        )
        return Delivery.objects.get(pk=delivery_id)
    payload = delivery.body.encode()
    headers = {
        "User-Agent": "Releaseboard-Webhooks/1",
        **signing.headers(subscription.secrets(), delivery.message_id, int(time.time()), payload),
    }
    allow = outbound.parse_networks(settings.WEBHOOK_ALLOW_NETWORKS)
    response = outbound.post(subscription.url, payload, headers, allow)
    ok = response.status is not None and 200 <= response.status < 300 and not response.error
    wait = 0
    fields: dict[str, Any] = {
        "status_code": response.status,
        "duration_ms": response.duration_ms,
        "error": response.error or ("" if ok else f"The receiver answered {response.status}."),
        "request_headers": headers,
        "response_excerpt": response.excerpt,
    }
    if ok:
        fields.update(state=DeliveryState.DELIVERED, delivered_at=timezone.now())
    elif response.status == 410:
        fields.update(state=DeliveryState.FAILED)
        _disable(subscription, "The receiver answered 410 Gone: it no longer wants these events.")
    elif delivery.attempts > len(BACKOFF):
        fields.update(state=DeliveryState.FAILED)
        fields["error"] = f"Gave up after {delivery.attempts} attempts. Last: {fields['error']}"[:500]
    else:
        wait = BACKOFF[delivery.attempts - 1]
        fields.update(state=DeliveryState.PENDING, next_attempt_at=timezone.now() + dt.timedelta(seconds=wait))
    Delivery.objects.filter(pk=delivery_id).update(**fields)
    if fields["state"] == DeliveryState.PENDING and wait <= MAX_COUNTDOWN:
        publish(delivery_id, countdown=wait)
    return Delivery.objects.get(pk=delivery_id)


def _disable(subscription: Subscription, reason: str) -> None:
    with transaction.atomic():
        Subscription.objects.filter(pk=subscription.pk).update(active=False, disabled_reason=reason)
        audit_record(
            "webhook.disabled",
            actor=None,
            repository=subscription.repository,
            obj=subscription,
            result="disabled",
            message=reason,
            details={"url": subscription.url},
        )


def sweep() -> int:
    """Publish deliveries that are due (their delayed message was not kept, or lost) and
    retry attempts whose worker died mid-send. Run by beat every minute."""
    now = timezone.now()
    Delivery.objects.filter(state=DeliveryState.SENDING, last_attempt_at__lt=now - STUCK_AFTER).update(
        state=DeliveryState.PENDING, next_attempt_at=now
    )
    due = list(
        Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now).values_list("pk", flat=True)[
            :500
        ]
    )
    for delivery_id in due:
        publish(delivery_id)
    return len(due)


def redeliver(delivery: Delivery, *, actor: Any) -> Delivery:
    """Send a delivery again now, with the same webhook-id (receivers dedupe by it)."""
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            state=DeliveryState.PENDING, next_attempt_at=timezone.now(), attempts=0, error=""
        )
        audit_record(
            "webhook.redelivered",
            actor=actor,
            repository=delivery.subscription.repository,
            obj=delivery.subscription,
            details={"message_id": delivery.message_id, "event": delivery.event_type},
        )
        delivery_id = delivery.pk
        transaction.on_commit(lambda: publish(delivery_id))
    delivery.refresh_from_db()
    return delivery


def send_test_event(subscription: Subscription, *, actor: Any) -> Delivery:
    now = timezone.now()
    event = events.WebhookEvent(
        "test.event",
        subscription.repository_id,
        None,
        {
            "type": "test.event",
            "timestamp": now.isoformat(),
            "data": {
                "repository": subscription.repository.name if subscription.repository else None,
                "actor": actor.get_username(),
                "action": "test.event",
                "object": None,
                "from_sha": None,
                "to_sha": None,
                "result": "ok",
                "message": "A test event from Releaseboard's webhooks page.",
                "audit_seq": None,
            },
        },
    )
    with transaction.atomic():
        return enqueue(subscription, event)
