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


class StatusState(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    ERROR = "error", "Error"


class CommitStatus(models.Model):
    """A fact reported by external CI about one commit. History is kept; the latest per
    (sha, context) is the one that counts."""

    repository = models.ForeignKey("releases.Repository", on_delete=models.CASCADE, related_name="statuses")
    sha = models.CharField(max_length=40)
    context = models.CharField(max_length=100)
    state = models.CharField(max_length=16, choices=StatusState.choices)
    target_url = models.URLField(max_length=500, blank=True)
    description = models.CharField(max_length=255, blank=True)
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    token_name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["repository", "sha", "context", "id"], name="status_latest")]

    def __str__(self) -> str:
        return f"{self.context}={self.state} on {self.sha[:10]}"


class GateTarget(models.TextChoices):
    BRANCH_HEAD = "branch_head", "The branch head, before its promotion is promoted"
    MERGE_COMMIT = "merge_commit", "The tested merge commit, before it lands on staging"
    STAGING_HEAD = "staging_head", "The staging head, before a release"


class RequiredContext(models.Model):
    """A status that must be "success" before a step may happen, and who may report it."""

    repository = models.ForeignKey("releases.Repository", on_delete=models.CASCADE, related_name="required_contexts")
    context = models.CharField(max_length=100, help_text='The status name CI reports, e.g. "ci/build".')
    applies_to = models.CharField(max_length=16, choices=GateTarget.choices)
    reporters = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        help_text="Users whose reports count (with any token of theirs, or the browser).",
    )
    reporter_tokens = models.JSONField(
        default=list,
        blank=True,
        help_text='Tokens whose reports count, as "user/token name", e.g. ["ci-bot/github-actions"].',
    )
    timeout_minutes = models.PositiveIntegerField(
        default=60, help_text="A missing or pending status fails the gate after this long."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["repository", "applies_to", "context"]
        constraints = [
            models.UniqueConstraint(fields=["repository", "context", "applies_to"], name="unique_required_context")
        ]

    def __str__(self) -> str:
        return f"{self.context} on {self.get_applies_to_display().lower()}"
