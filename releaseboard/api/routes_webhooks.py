"""Outgoing webhooks over the API, as on the Webhooks page: the same services decide
(releaseboard/integrations/subscriptions.py and outbox.py).

Admins manage every subscription, release managers those of a repository. Reading needs
the `read` scope; a change needs `promote` (enough for a repository's subscriptions) or
`admin` (all-repository ones): either scope opens the door, the role decides. A secret
is answered once, when it is made or rotated, and never listed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from ninja import Field, Query, Router, Schema, Status

from releaseboard.integrations import outbox, subscriptions
from releaseboard.integrations.models import Delivery, Subscription
from releaseboard.paging import keyset_page
from releaseboard.releases.models import Repository
from releaseboard.roles import Perm, has_perm
from releaseboard.tokens.models import Scope

from .access import actor, actor_with_any
from .problems import Problem

router = Router(tags=["webhooks"])

MANAGE = (Scope.PROMOTE, Scope.ADMIN)


class WebhookIn(Schema):
    url: str = Field(description="Where to POST events (https://…)")
    events: list[str] = Field(description="Event names, e.g. promotion.promoted, release.created")
    repo: str | None = Field(None, description="A repository's name; empty for all repositories (admins only)")
    format: str = Field("standard", description="standard (signed Releaseboard JSON) or slack")
    description: str = Field("", max_length=200)


class WebhookOut(Schema):
    id: int
    url: str
    repository: str | None
    events: list[str]
    format: str
    description: str
    active: bool
    disabled_reason: str
    created_by: str | None
    created_at: dt.datetime
    previous_secret_expires_at: dt.datetime | None


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="The signing secret (whsec_…): shown this once, keep it")


class SecretOut(Schema):
    id: int
    secret: str = Field(description="The new signing secret, shown this once")
    previous_secret_expires_at: dt.datetime | None = Field(description="The old secret still signs until then")


class DeliveryOut(Schema):
    id: int
    message_id: str
    event_type: str
    state: str
    attempts: int
    status_code: int | None
    duration_ms: int | None
    error: str
    response_excerpt: str
    created_at: dt.datetime
    last_attempt_at: dt.datetime | None
    next_attempt_at: dt.datetime
    delivered_at: dt.datetime | None


class DeliveryPageOut(Schema):
    deliveries: list[DeliveryOut] = Field(description="Newest first")
    newer_after: int | None = Field(description="?after= for newer deliveries")
    older_before: int | None = Field(description="?before= for older deliveries")


class DeliveryFilter(Schema):
    before: int | None = Field(None, ge=1)
    after: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=200)


def _webhook(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.pk,
        "url": subscription.url,
        "repository": subscription.repository.name if subscription.repository else None,
        "events": subscription.events,
        "format": subscription.format,
        "description": subscription.description,
        "active": subscription.active,
        "disabled_reason": subscription.disabled_reason,
        "created_by": subscription.created_by.get_username() if subscription.created_by else None,
        "created_at": subscription.created_at,
        "previous_secret_expires_at": subscription.previous_secret_expires_at,
    }


def _delivery(delivery: Delivery) -> dict[str, Any]:
    return {name: getattr(delivery, name) for name in DeliveryOut.model_fields}


def _may_see(user: Any) -> None:
    if not (has_perm(user, Perm.CONFIGURE) or has_perm(user, Perm.PROMOTE)):
        raise PermissionDenied("You need the Release manager or Admin role to manage webhooks.")


def _subscription_for(user: Any, subscription_id: int) -> Subscription:
    _may_see(user)
    subscription = subscriptions.visible_to(user).filter(pk=subscription_id).first()
    if subscription is None:
        raise Http404(f"No webhook #{subscription_id} that you may see; 'rb webhook list' lists them.")
    if not subscriptions.may_manage(user, subscription.repository):
        raise PermissionDenied("You may not manage this webhook.")
    return subscription


def _refused(exc: subscriptions.Refused) -> Problem:
    if exc.field:
        return Problem(422, "validation_failed", exc.message, errors=[{"field": exc.field, "message": exc.message}])
    return Problem(403, "forbidden", exc.message)


@router.get("/webhooks", response=list[WebhookOut], summary="Webhook subscriptions you manage")
def webhook_list(request: HttpRequest) -> list[dict[str, Any]]:
    user = actor(request, Scope.READ)
    _may_see(user)
    return [_webhook(s) for s in subscriptions.visible_to(user).order_by("id")]


@router.post(
    "/webhooks",
    response={201: WebhookCreatedOut},
    summary="Subscribe a URL to events; answers with its secret, once (promote or admin scope)",
)
def webhook_create(request: HttpRequest, body: WebhookIn) -> Status[dict[str, Any]]:
    user = actor_with_any(request, *MANAGE)
    _may_see(user)
    repository = None
    if body.repo:
        repository = Repository.objects.filter(name=body.repo).first()
        if repository is None or not has_perm(user, Perm.VIEW):
            message = f"No repository named '{body.repo}'; 'rb repo list' shows them."
            raise Problem(422, "validation_failed", message, errors=[{"field": "repo", "message": message}])
    try:
        subscription, secret = subscriptions.create(
            actor=user,
            repository=repository,
            url=body.url,
            event_types=body.events,
            format=body.format,
            description=body.description,
        )
    except subscriptions.Refused as exc:
        raise _refused(exc) from None
    return Status(201, {**_webhook(subscription), "secret": secret})


@router.get("/webhooks/{webhook_id}", response=WebhookOut, summary="One webhook subscription")
def webhook_detail(request: HttpRequest, webhook_id: int) -> dict[str, Any]:
    user = actor(request, Scope.READ)
    return _webhook(_subscription_for(user, webhook_id))


@router.delete("/webhooks/{webhook_id}", response={204: None}, summary="Remove a webhook (promote or admin scope)")
def webhook_remove(request: HttpRequest, webhook_id: int) -> Status[None]:
    user = actor_with_any(request, *MANAGE)
    subscription = _subscription_for(user, webhook_id)
    try:
        subscriptions.remove(subscription, actor=user)
    except subscriptions.Refused as exc:
        raise _refused(exc) from None
    return Status(204, None)


@router.post(
    "/webhooks/{webhook_id}/rotate",
    response=SecretOut,
    summary="A new signing secret, shown once; the old one signs too for a day (promote or admin scope)",
)
def webhook_rotate(request: HttpRequest, webhook_id: int) -> dict[str, Any]:
    user = actor_with_any(request, *MANAGE)
    subscription = _subscription_for(user, webhook_id)
    try:
        secret = subscriptions.rotate(subscription, actor=user)
    except subscriptions.Refused as exc:
        raise _refused(exc) from None
    subscription.refresh_from_db()
    return {
        "id": subscription.pk,
        "secret": secret,
        "previous_secret_expires_at": subscription.previous_secret_expires_at,
    }


@router.post(
    "/webhooks/{webhook_id}/test",
    response={202: DeliveryOut},
    summary="Queue a test event for this webhook (promote or admin scope)",
)
def webhook_test(request: HttpRequest, webhook_id: int) -> Status[dict[str, Any]]:
    user = actor_with_any(request, *MANAGE)
    subscription = _subscription_for(user, webhook_id)
    return Status(202, _delivery(outbox.send_test_event(subscription, actor=user)))


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response=DeliveryPageOut,
    summary="A webhook's deliveries, newest first (keyset pages: ?before= / ?after=, ?limit=)",
)
def webhook_deliveries(request: HttpRequest, webhook_id: int, filters: Query[DeliveryFilter]) -> dict[str, Any]:
    user = actor(request, Scope.READ)
    subscription = _subscription_for(user, webhook_id)
    page = keyset_page(
        subscription.deliveries.all(), "id", before=filters.before, after=filters.after, size=filters.limit
    )
    return {
        "deliveries": [_delivery(d) for d in page],
        "newer_after": page.newer_after,
        "older_before": page.older_before,
    }


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response={202: DeliveryOut},
    summary="Send a delivery again now, with the same webhook-id (promote or admin scope)",
)
def webhook_redeliver(request: HttpRequest, webhook_id: int, delivery_id: int) -> Status[dict[str, Any]]:
    user = actor_with_any(request, *MANAGE)
    subscription = _subscription_for(user, webhook_id)
    delivery = Delivery.objects.select_related("subscription").filter(pk=delivery_id, subscription=subscription).first()
    if delivery is None:
        raise Http404(f"Webhook #{webhook_id} has no delivery #{delivery_id}.")
    return Status(202, _delivery(outbox.redeliver(delivery, actor=user)))
