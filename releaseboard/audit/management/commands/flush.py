"""Django's `flush`, which also empties the audit table when the test suite asks.

Django's TransactionTestCase (and so pytest-django's transactional tests) wipe every
table after each test with `call_command("flush")`. The audit table's triggers refuse
that, so inside the test environment this command runs the flush in the maintenance
window (audit/maintenance.py). Outside it, nothing changes: the flush runs as Django's
does, and the triggers refuse to empty the audit log.

On PostgreSQL the test suite's flush (which keeps the sequences) deletes the rows instead
of truncating the tables: TRUNCATE gives each of the ~45 tables new files, about 0.3 s a
flush, where deleting the few rows a test left takes milliseconds. Django's foreign keys
are deferred to the commit, so the order of the tables does not matter. The content types
and permissions are kept: they are the rows the flush's post_migrate signal would write
again (another 0.1 s), so it is sent only when they are missing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.commands import flush
from django.core.management.sql import emit_post_migrate_signal
from django.db import DEFAULT_DB_ALIAS, connections

from releaseboard.audit.maintenance import in_test_environment, maintenance_window

# What post_migrate writes after every flush, the same each time: kept by the test flush.
KEPT = frozenset({ContentType._meta.db_table, Permission._meta.db_table})


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        if not in_test_environment():
            return super().handle(**options)
        database = options.get("database") or DEFAULT_DB_ALIAS
        connection = connections[database]
        if connection.vendor != "postgresql" or options.get("reset_sequences", True):
            with maintenance_window(database):
                return super().handle(**options)
        tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
        with maintenance_window(database), connection.cursor() as cursor:
            for table in tables:
                if table not in KEPT:
                    cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")
        if tables and not options.get("inhibit_post_migrate") and not ContentType.objects.using(database).exists():
            emit_post_migrate_signal(options.get("verbosity", 1), options.get("interactive", False), database)
