"""Personal access tokens: the secret is never stored, only its keyed digest."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    READ = "read", "read: see repositories, boards, jobs, logs and (with the role) the audit log"
    BRANCHES = "branches", "branches: request branches and promotions, update from staging, test again"
    PROMOTE = "promote", "promote: promote to staging, release, copy master to staging, locks and jobs"
    STATUSES = "statuses", "statuses: report CI statuses"
    DEPLOY = "deploy", "deploy: deploy, roll back and lock environments; open and close incidents"
    ADMIN = "admin", "admin: revoke tokens through the API (an admin: anyone's)"


class AccessToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    # The first characters after "rbp_", shown in lists so a leaked token can be recognised.
    prefix = models.CharField(max_length=12)
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.CharField(max_length=64, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="unique_token_name_per_user")]

    def __str__(self) -> str:
        return f"{self.name} (rbp_{self.prefix}…)"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class TokenFailure(models.Model):
    """Bad tokens sent by one client address in the current window (throttling)."""

    client = models.CharField(max_length=64, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.client}: {self.failures} bad tokens"
