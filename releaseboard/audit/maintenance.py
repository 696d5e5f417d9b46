"""The one way past the audit table's append-only triggers, and why only tests get it.

The triggers (migration 0003) refuse UPDATE, DELETE and TRUNCATE on the audit table
unless a maintenance flag is set in the current transaction: on PostgreSQL the
transaction-local setting `releaseboard.audit_maintenance`, on SQLite a row in the
table `audit_maintenance_window` (inserted and removed inside one transaction, so no
other connection ever sees it).

Only the test harness may open the window: Django's test runner and pytest-django wipe
the tables after each transactional test with `flush`, and tests play the attacker who
has database access. `maintenance_window()` refuses unless Django's test environment
is set up in this process (`django.test.utils.setup_test_environment()`, which only
test runners call), so no production code path can set the flag. Someone with direct
database access can still set it, or drop the triggers; that is what the hash chain
and the signed checkpoints are for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections, transaction

SETTING = "releaseboard.audit_maintenance"
SQLITE_TABLE = "audit_maintenance_window"


class MaintenanceRefused(RuntimeError):
    pass


def in_test_environment() -> bool:
    """True only between Django's setup_test_environment() and its teardown: the test
    runners (Django's and pytest-django's) call it, nothing else in Releaseboard does."""
    from django.test import utils

    return hasattr(utils._TestState, "saved_data")


@contextmanager
def maintenance_window(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Let the statements run inside this block change or remove audit events. Tests only."""
    if not in_test_environment():
        raise MaintenanceRefused("The audit log's maintenance window is for the test suite only.")
    connection = connections[using]
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT set_config(%s, 'on', true)", [SETTING])
            else:
                cursor.execute(f"INSERT INTO {SQLITE_TABLE} (opened_at) VALUES (CURRENT_TIMESTAMP)")
        yield
        # On an error the atomic block rolls back, which undoes the flag as well.
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT set_config(%s, 'off', true)", [SETTING])
            else:
                cursor.execute(f"DELETE FROM {SQLITE_TABLE}")
