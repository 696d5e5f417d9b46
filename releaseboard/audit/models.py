from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One thing that happened: who, when, where, to what, from which SHA to which, result.

    Written only through releaseboard.audit.record(), inside the transaction of the
    change it describes. Rows are never updated or deleted.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    # Kept as text as well, so the event still names its actor and repository if those
    # rows are renamed later.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    repository_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    repository_name = models.CharField(max_length=100, blank=True)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.BigIntegerField(null=True, blank=True)
    object_repr = models.CharField(max_length=255, blank=True)
    from_sha = models.CharField(max_length=40, blank=True)
    to_sha = models.CharField(max_length=40, blank=True)
    result = models.CharField(max_length=32, default="ok")
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.object_repr}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Audit events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit events are append-only; they cannot be deleted.")
