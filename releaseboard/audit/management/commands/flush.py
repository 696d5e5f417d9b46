"""Django's `flush`, which also empties the audit table when the test suite asks.

Django's TransactionTestCase (and so pytest-django's transactional tests) wipe every
table after each test with `call_command("flush")`. The audit table's triggers refuse
that, so inside the test environment this command runs the flush in the maintenance
window (audit/maintenance.py). Outside it, nothing changes: the flush runs as Django's
does, and the triggers refuse to empty the audit log.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush
from django.db import DEFAULT_DB_ALIAS

from releaseboard.audit.maintenance import in_test_environment, maintenance_window


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        if not in_test_environment():
            return super().handle(**options)
        with maintenance_window(options.get("database") or DEFAULT_DB_ALIAS):
            return super().handle(**options)
