"""Verify the audit log: exit 0 when intact, 1 with a report of what is wrong."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from releaseboard.audit.verify import verify, verify_recent


class Command(BaseCommand):
    help = "Verify the audit log's hash chain against itself and the signed checkpoints."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--quick",
            action="store_true",
            help="check the signed checkpoints and only the events after the latest one (fast at any size)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_recent() if options["quick"] else verify()
        for line in report.lines():
            self.stdout.write(line)
        if not report.ok:
            raise CommandError(f"audit log NOT intact (first bad seq: {report.first_bad_seq})", returncode=1)
