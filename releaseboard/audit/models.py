from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnly(ValueError):
    """Raised when code tries to change or remove audit events."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Refuses the bulk paths that would change or remove rows (the database triggers
    refuse them too; this says so earlier, in Python, with a clear message)."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnly("Audit events are append-only; they cannot be changed.")

    def delete(self) -> NoReturn:
        raise AppendOnly("Audit events are append-only; they cannot be deleted.")

    def bulk_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        # Events must join the hash chain one by one, through audit.service.record().
        raise AppendOnly("Audit events are written one at a time through audit.service.record().")


class AuditEvent(models.Model):
    """One thing that happened: who, when, where, to what, from which SHA to which, result.

    Written only through releaseboard.audit.record(), inside the transaction of the
    change it describes. Rows are never updated or deleted. Each event is a link of a
    hash chain: `seq` counts events from 1 without gaps, `hash` covers the event's
    content and `prev_hash` (the hash of seq - 1), see audit/chain.py.
    """

    # Set by record() while it holds the chain lock, so it is part of the hashed content.
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    # Kept as text as well, so the event still names its actor and repository if those
    # rows are renamed later.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    repository_id = models.BigIntegerField(null=True, blank=True)
    repository_name = models.CharField(max_length=100, blank=True)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.BigIntegerField(null=True, blank=True)
    object_repr = models.CharField(max_length=255, blank=True)
    from_sha = models.CharField(max_length=40, blank=True)
    to_sha = models.CharField(max_length=40, blank=True)
    result = models.CharField(max_length=32, default="ok")
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    seq = models.BigIntegerField(unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [
            # The listing is keyset-paginated newest first by seq, alone or after one
            # equality filter: each of these serves one filter without a sort.
            models.Index(fields=["repository_id", "seq"], name="audit_repository_seq"),
            models.Index(fields=["actor_name", "seq"], name="audit_actor_seq"),
            models.Index(fields=["action", "seq"], name="audit_action_seq"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnly("Audit events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnly("Audit events are append-only; they cannot be deleted.")


class Checkpoint(models.Model):
    """A copy of a signed checkpoint file, for listing on the verification page.

    Verification never trusts these rows: whoever can edit the audit table can edit
    this one too. It trusts the signed files in AUDIT_CHECKPOINT_DIR.
    """

    created_at = models.DateTimeField()
    seq = models.BigIntegerField()
    count = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    file_name = models.CharField(max_length=200, unique=True)
    signature = models.CharField(max_length=64)
    created_by = models.CharField(max_length=150)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"checkpoint at seq {self.seq} ({self.created_at:%Y-%m-%d %H:%M:%S})"


class VerificationRun(models.Model):
    """One full verification of the chain, run by a worker, with its progress and its
    kept result: the page shows the last one instead of walking a million events per
    request."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        INTACT = "intact", "Intact"
        NOT_INTACT = "not_intact", "NOT intact"
        ERROR = "error", "Could not finish"

        @classmethod
        def active(cls) -> tuple[str, ...]:
            return (cls.QUEUED, cls.RUNNING)

    requested_by = models.CharField(max_length=150)
    requested_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # The head when the run started: events appended later are left to the next run.
    target_seq = models.BigIntegerField(default=0)
    checked_seq = models.BigIntegerField(default=0)
    checked_events = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.TextField(blank=True)
    problems = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"full verification #{self.pk} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.State.active()

    @property
    def percent(self) -> int:
        if self.target_seq <= 0:
            return 100 if not self.is_active else 0
        return min(100, int(self.checked_seq * 100 / self.target_seq))
