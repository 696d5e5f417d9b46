"""Database triggers that make the audit table append-only for every client, not only
for Django code (AuditEvent.save/delete and its QuerySet refuse as well).

PostgreSQL: one statement-level trigger refuses UPDATE, DELETE and TRUNCATE.
SQLite: two triggers refuse UPDATE and DELETE (SQLite has no TRUNCATE; its
"DELETE FROM t" without WHERE runs the DELETE trigger for every row).

The flush problem: after each transactional test, Django's test case wipes every table
(TRUNCATE on PostgreSQL, DELETE on SQLite), and tests must tamper with events to show
that verification catches it. So the triggers let the statement through when a
maintenance flag is set in the same transaction: the transaction-local setting
`releaseboard.audit_maintenance` = 'on' on PostgreSQL (SET LOCAL / set_config(..., true)
ends with the transaction), a row in `audit_maintenance_window` on SQLite (inserted and
deleted inside one transaction, never visible to another connection). Only
audit.maintenance.maintenance_window() sets it, and it refuses outside Django's test
environment; the audit app's `flush` command uses it only there. No production code
path can set the flag. A database superuser can, or can drop the triggers; the hash
chain and the signed checkpoints catch what they then do.

Caution for later migrations: on SQLite, Django alters a table by rebuilding it, which
drops its triggers. A migration that alters audit_auditevent must create them again
(tests/test_audit_chain.py checks that they are in place).
"""

from typing import Any

from django.db import migrations

PG_CREATE = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('releaseboard.audit_maintenance', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING HINT = 'Audit events are written by Releaseboard and never changed or removed.';
END
$$;
CREATE TRIGGER audit_auditevent_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""
PG_DROP = """
DROP TRIGGER IF EXISTS audit_auditevent_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_refuse_change();
"""

SQLITE_CREATE = [
    "CREATE TABLE IF NOT EXISTS audit_maintenance_window (opened_at TEXT NOT NULL)",
    """CREATE TRIGGER audit_auditevent_no_update BEFORE UPDATE ON audit_auditevent
       WHEN NOT EXISTS (SELECT 1 FROM audit_maintenance_window)
       BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE on audit_auditevent refused'); END""",
    """CREATE TRIGGER audit_auditevent_no_delete BEFORE DELETE ON audit_auditevent
       WHEN NOT EXISTS (SELECT 1 FROM audit_maintenance_window)
       BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE on audit_auditevent refused'); END""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS audit_auditevent_no_update",
    "DROP TRIGGER IF EXISTS audit_auditevent_no_delete",
    "DROP TABLE IF EXISTS audit_maintenance_window",
]


def create_triggers(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # params=None: the SQL holds literal % signs (RAISE's format) and no parameters.
        schema_editor.execute(PG_CREATE, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement)
    else:
        raise NotImplementedError(f"No append-only triggers for {vendor}; add them before using it.")


def drop_triggers(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    statements = [PG_DROP] if vendor == "postgresql" else SQLITE_DROP if vendor == "sqlite" else []
    for statement in statements:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_hash_chain_and_checkpoints"),
    ]

    operations = [
        migrations.RunPython(create_triggers, drop_triggers),
    ]
