"""Subscribing URLs to events: who may, and the audit trail of every change.

Admins manage every subscription, including those for all repositories; a release
manager manages the subscriptions of a repository. The secret is returned once, when
it is made; the audit log records the URL and events, never the secret.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from releaseboard.audit.service import record as audit_record
from releaseboard.integrations import events, outbound, signing
from releaseboard.integrations.models import Subscription, WebhookFormat
from releaseboard.roles import Perm, has_perm

# How long the previous secret stays valid after a rotation.
ROTATION_OVERLAP = dt.timedelta(hours=24)


class Refused(Exception):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def may_manage(user: Any, repository: Any) -> bool:
    if has_perm(user, Perm.CONFIGURE):
        return True
    return repository is not None and has_perm(user, Perm.PROMOTE)


def visible_to(user: Any) -> Any:
    found = Subscription.objects.select_related("repository", "created_by")
    return found if has_perm(user, Perm.CONFIGURE) else found.filter(repository__isnull=False)


def create(
    *, actor: Any, repository: Any, url: str, event_types: list[str], format: str, description: str = ""
) -> tuple[Subscription, str]:
    """Subscribe `url`; returns the subscription and its secret (shown once)."""
    if not may_manage(actor, repository):
        raise Refused(
            "Only an admin may subscribe to events of every repository; pick a repository."
            if repository is None
            else "You need the Release manager or Admin role to manage this repository's webhooks."
        )
    unknown = sorted(set(event_types) - set(events.EVENTS))
    if not event_types or unknown:
        raise Refused(f"Choose at least one known event{f' (unknown: {unknown})' if unknown else ''}.", "events")
    if format not in WebhookFormat.values:
        raise Refused("Choose the standard or the Slack format.", "format")
    try:
        outbound.check_url(url, outbound.parse_networks(settings.WEBHOOK_ALLOW_NETWORKS))
    except outbound.Refused as exc:
        raise Refused(str(exc), "url") from None
    secret = signing.new_secret()
    with transaction.atomic():
        subscription = Subscription.objects.create(
            repository=repository,
            url=url,
            events=sorted(set(event_types)),
            format=format,
            description=description,
            secret=secret,
            created_by=actor,
        )
        audit_record(
            "webhook.created",
            actor=actor,
            repository=repository,
            obj=subscription,
            details={"url": url, "events": subscription.events, "format": format},
        )
    return subscription, secret


def rotate(subscription: Subscription, *, actor: Any, now: Any = None) -> str:
    """A new secret; the old one keeps signing deliveries for ROTATION_OVERLAP."""
    if not may_manage(actor, subscription.repository):
        raise Refused("You may not manage this webhook.")
    now = now or timezone.now()
    secret = signing.new_secret()
    with transaction.atomic():
        Subscription.objects.filter(pk=subscription.pk).update(
            previous_secret=subscription.secret, previous_secret_expires_at=now + ROTATION_OVERLAP, secret=secret
        )
        audit_record(
            "webhook.secret_rotated",
            actor=actor,
            repository=subscription.repository,
            obj=subscription,
            details={"url": subscription.url, "previous_valid_until": (now + ROTATION_OVERLAP).isoformat()},
        )
    return secret


def set_active(subscription: Subscription, active: bool, *, actor: Any) -> None:
    if not may_manage(actor, subscription.repository):
        raise Refused("You may not manage this webhook.")
    with transaction.atomic():
        Subscription.objects.filter(pk=subscription.pk).update(active=active, disabled_reason="")
        audit_record(
            "webhook.enabled" if active else "webhook.disabled",
            actor=actor,
            repository=subscription.repository,
            obj=subscription,
            details={"url": subscription.url},
        )


def remove(subscription: Subscription, *, actor: Any) -> None:
    if not may_manage(actor, subscription.repository):
        raise Refused("You may not manage this webhook.")
    with transaction.atomic():
        audit_record(
            "webhook.removed",
            actor=actor,
            repository=subscription.repository,
            obj=subscription,
            details={"url": subscription.url, "events": subscription.events},
        )
        subscription.delete()
