"""Outgoing webhooks: subscriptions, their secrets (shown once) and their deliveries."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from releaseboard.integrations import events, outbox, subscriptions
from releaseboard.integrations.models import Delivery, Subscription, WebhookFormat
from releaseboard.paging import cursor, keyset_page
from releaseboard.releases.models import Repository
from releaseboard.roles import Perm, has_perm

DELIVERIES_PER_PAGE = 50


class SubscriptionForm(forms.Form):
    repository = forms.ModelChoiceField(
        queryset=Repository.objects.all(), required=False, empty_label="All repositories (admins only)"
    )
    url = forms.URLField(max_length=500, label="Payload URL", assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=list(events.EVENTS.items())[:-1], widget=forms.CheckboxSelectMultiple, label="Events"
    )
    format = forms.ChoiceField(choices=WebhookFormat.choices, initial=WebhookFormat.STANDARD)
    description = forms.CharField(max_length=200, required=False)


def _may_see(user: Any) -> None:
    if not (has_perm(user, Perm.CONFIGURE) or has_perm(user, Perm.PROMOTE)):
        raise PermissionDenied("You need the Release manager or Admin role to manage webhooks.")


def _subscription_for(request: HttpRequest, subscription_id: int) -> Subscription:
    _may_see(request.user)
    subscription = get_object_or_404(subscriptions.visible_to(request.user), pk=subscription_id)
    if not subscriptions.may_manage(request.user, subscription.repository):
        raise PermissionDenied("You may not manage this webhook.")
    return subscription


@login_required
@require_http_methods(["GET", "POST"])
def webhook_list(request: HttpRequest) -> HttpResponse:
    _may_see(request.user)
    form = SubscriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            subscription, secret = subscriptions.create(
                actor=request.user,
                repository=data["repository"],
                url=data["url"],
                event_types=data["events"],
                format=data["format"],
                description=data["description"],
            )
        except subscriptions.Refused as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            # Rendered, not redirected: the secret must not travel in a cookie or a URL.
            return render(request, "web/webhook_secret.html", {"subscription": subscription, "secret": secret})
    found = subscriptions.visible_to(request.user).order_by("id")
    return render(request, "web/webhooks.html", {"form": form, "subscriptions": found})


@login_required
def webhook_detail(request: HttpRequest, subscription_id: int) -> HttpResponse:
    subscription = _subscription_for(request, subscription_id)
    page = keyset_page(
        subscription.deliveries.all(),
        "id",
        before=cursor(request.GET.get("before")),
        after=cursor(request.GET.get("after")),
        size=DELIVERIES_PER_PAGE,
    )
    return render(request, "web/webhook_detail.html", {"subscription": subscription, "page": page})


@login_required
@require_POST
def webhook_action(request: HttpRequest, subscription_id: int, action: str) -> HttpResponse:
    subscription = _subscription_for(request, subscription_id)
    if action == "test":
        delivery = outbox.send_test_event(subscription, actor=request.user)
        messages.success(request, f"Test event {delivery.message_id} queued; its delivery appears below.")
    elif action == "rotate":
        secret = subscriptions.rotate(subscription, actor=request.user)
        subscription.refresh_from_db()
        return render(
            request, "web/webhook_secret.html", {"subscription": subscription, "secret": secret, "rotated": True}
        )
    elif action in ("disable", "enable"):
        subscriptions.set_active(subscription, action == "enable", actor=request.user)
        messages.success(request, f"Webhook {'enabled' if action == 'enable' else 'disabled'}.")
    elif action == "remove":
        subscriptions.remove(subscription, actor=request.user)
        messages.success(request, f"Webhook to {subscription.url} removed.")
        return redirect("web:webhook_list")
    else:
        raise PermissionDenied("Unknown action.")
    return redirect("web:webhook_detail", subscription_id=subscription.pk)


@login_required
@require_POST
def delivery_redeliver(request: HttpRequest, subscription_id: int, delivery_id: int) -> HttpResponse:
    subscription = _subscription_for(request, subscription_id)
    delivery = get_object_or_404(
        Delivery.objects.select_related("subscription"), pk=delivery_id, subscription=subscription
    )
    outbox.redeliver(delivery, actor=request.user)
    messages.success(request, f"Delivery {delivery.message_id} queued again (same webhook-id).")
    return redirect("web:webhook_detail", subscription_id=subscription.pk)
