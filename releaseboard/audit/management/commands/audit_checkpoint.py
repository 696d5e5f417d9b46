"""Sign a checkpoint of the audit chain now (the beat schedule does it periodically)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from releaseboard.audit import checkpoint


class Command(BaseCommand):
    help = "Write a signed checkpoint (count, last seq, head hash) of the audit log."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            written = checkpoint.write(created_by="manage.py audit_checkpoint")
        except checkpoint.CheckpointRefused as exc:
            raise CommandError(str(exc), returncode=1) from exc
        self.stdout.write(f"Checkpoint at seq {written.seq} ({written.count} events) written to {written.file_name}")
