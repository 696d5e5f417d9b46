"""Webhook subscriptions and their deliveries."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone


class WebhookFormat(models.TextChoices):
    STANDARD = "standard", "Releaseboard JSON, signed (Standard Webhooks)"
    SLACK = "slack", "Slack incoming webhook"


class Subscription(models.Model):
    """A URL that wants some kinds of events, for one repository or (admins only) all."""

    repository = models.ForeignKey(
        "releases.Repository", null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks"
    )
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list)
    format = models.CharField(max_length=16, choices=WebhookFormat.choices, default=WebhookFormat.STANDARD)
    description = models.CharField(max_length=200, blank=True)
    # The signing secret ("whsec_" + base64). During a rotation the previous one stays
    # valid until previous_secret_expires_at: deliveries carry both signatures.
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook #{self.pk} → {self.url}"

    def secrets(self, now: dt.datetime | None = None) -> list[str]:
        """The secrets to sign with now: the current one, and the previous one while
        its overlap lasts."""
        now = now or timezone.now()
        found = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > now:
            found.append(self.previous_secret)
        return found


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Gave up"


class Delivery(models.Model):
    """One event for one subscription: the exact body sent, and the last attempt's outcome."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.CharField(max_length=40, unique=True)  # webhook-id: the same on every retry
    event_type = models.CharField(max_length=64)
    audit_seq = models.BigIntegerField(null=True, blank=True)
    body = models.TextField()
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    request_headers = models.JSONField(default=dict, blank=True)  # never the secret: only its signature
    response_excerpt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"delivery {self.message_id} ({self.event_type}, {self.state})"
