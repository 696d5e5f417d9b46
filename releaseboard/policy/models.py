"""Drift alarms, locks ("stop the line"), freeze windows and hotfix exceptions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from releaseboard.policy import rules


class DriftState(models.TextChoices):
    OPEN = "open", "Open"
    ADOPTED = "adopted", "Adopted by a release manager"
    RESET = "reset", "Reset: staging copied from master"


class DriftAlarm(models.Model):
    """master or staging moved on the remote in a way Releaseboard did not make (DESIGN
    invariant 6). While open, promotions into that branch are refused."""

    repository = models.ForeignKey("releases.Repository", on_delete=models.CASCADE, related_name="drift_alarms")
    branch_name = models.CharField(max_length=255)
    expected_sha = models.CharField(max_length=40, help_text="The head Releaseboard had recorded.")
    found_sha = models.CharField(max_length=40, help_text="The head found on the remote.")
    commits = models.JSONField(default=list, blank=True)  # [{sha, subject, author, email}], newest first
    state = models.CharField(max_length=16, choices=DriftState.choices, default=DriftState.OPEN)
    detected_at = models.DateTimeField()
    # The audit event that last reported it: a copy of master to staging after it resets it.
    detected_seq = models.BigIntegerField(default=0)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["repository", "branch_name"],
                condition=models.Q(state="open"),
                name="one_open_drift_alarm_per_branch",
            )
        ]

    def __str__(self) -> str:
        return f"{self.branch_name} moved outside Releaseboard ({self.expected_sha[:10]}..{self.found_sha[:10]})"

    @property
    def outside_commits(self) -> list[dict[str, Any]]:
        """The new commits that Releaseboard did not put there (not reachable from a commit it pushed)."""
        return [c for c in self.commits if not c.get("releaseboard")]

    @property
    def releaseboard_commits(self) -> list[dict[str, Any]]:
        """The new commits that came in through Releaseboard's tested promotions."""
        return [c for c in self.commits if c.get("releaseboard")]

    @property
    def authors(self) -> list[str]:
        """Who wrote or committed the commits Releaseboard did not put there: the people to
        ask about the move (the authors of promoted work are not among them)."""
        found = set()
        for commit in self.outside_commits:
            found |= {commit.get("author", ""), commit.get("committer", "")}
        return sorted(found - {""})


class Lock(models.Model):
    """ "Stop the line": promotions to staging and master stop until a release manager lifts it."""

    repository = models.ForeignKey("releases.Repository", on_delete=models.CASCADE, related_name="locks")
    reason = models.TextField()
    locked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    locked_at = models.DateTimeField()
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["repository"], condition=models.Q(lifted_at__isnull=True), name="one_active_lock_per_repository"
            )
        ]

    def __str__(self) -> str:
        return f"Lock of {self.repository}: {self.reason[:60]}"


class FreezeWindow(models.Model):
    """A recurring freeze: promotions stop on these weekdays between these local times."""

    repository = models.ForeignKey("releases.Repository", on_delete=models.CASCADE, related_name="freeze_windows")
    weekdays = models.JSONField(default=list)  # 0 = Monday … 6 = Sunday
    start = models.TimeField()
    end = models.TimeField(help_text="Not after the start: the window ends the next day.")
    time_zone = models.CharField(max_length=64, help_text="IANA name, e.g. Europe/Berlin.")
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return rules.describe(self.as_rule())

    def as_rule(self) -> rules.Window:
        return rules.Window(frozenset(self.weekdays), self.start, self.end, self.time_zone)


class HotfixException(models.Model):
    """A hotfix promotion allowed through a lock or freeze: asked by one release manager,
    approved by another."""

    promotion = models.ForeignKey("releases.Promotion", on_delete=models.CASCADE, related_name="policy_exceptions")
    reason = models.TextField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_at = models.DateTimeField()
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Exception for promotion #{self.promotion_id}"

    @property
    def approved(self) -> bool:
        return self.approved_at is not None
