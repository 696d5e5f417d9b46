"""The audit log is append-only at every level and its events form one hash chain."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from releaseboard.audit import chain
from releaseboard.audit.maintenance import maintenance_window
from releaseboard.audit.models import AppendOnly, AuditEvent
from releaseboard.audit.service import record
from releaseboard.audit.verify import verify
from tests.conftest import ROOT, _test_database_url


class Shop:
    id = 7
    name = "shop"


def append(count: int, **kwargs: Any) -> list[AuditEvent]:
    with transaction.atomic():
        return [
            record("branch.requested", actor=None, repository=Shop(), message=f"event {i}", **kwargs)
            for i in range(count)
        ]


def raw(sql: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


@pytest.mark.django_db
def test_each_event_is_numbered_and_linked_to_the_one_before_it() -> None:
    events = append(3, details={"job": 1, "nested": {"b": [1, 2], "a": "é"}})
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == chain.GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:2]]
    for stored in AuditEvent.objects.all():
        assert chain.event_hash(stored, stored.prev_hash) == stored.hash
    assert verify().ok


@pytest.mark.django_db
def test_the_hash_covers_every_content_field() -> None:
    (event,) = append(1)
    for name, changed in [
        ("seq", 2),
        ("action", "x"),
        ("actor_name", "mallory"),
        ("message", "other"),
        ("repository_name", "evil"),
        ("to_sha", "f" * 40),
        ("result", "failed"),
        ("details", {"a": 1}),
        ("created_at", event.created_at.replace(year=2001)),
    ]:
        content = {f: getattr(event, f) for f in chain.CONTENT_FIELDS} | {name: changed}
        assert chain.event_hash(content, event.prev_hash) != event.hash, name
    assert chain.event_hash(event, "1" * 64) != event.hash


@pytest.mark.django_db
def test_django_refuses_to_change_or_delete_events() -> None:
    (event,) = append(1)
    with pytest.raises(AppendOnly):
        event.save()
    with pytest.raises(AppendOnly):
        event.delete()
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(message="rewritten")
    with pytest.raises(AppendOnly):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnly):
        AuditEvent.objects.bulk_create([AuditEvent(action="forged", actor_name="x", seq=2)])
    assert AuditEvent.objects.get().message == "event 0"


@pytest.mark.django_db
def test_the_database_refuses_a_raw_update_of_an_event() -> None:
    append(2)
    with pytest.raises(DatabaseError, match="append-only"):
        raw("UPDATE audit_auditevent SET message = 'rewritten' WHERE seq = 1")
    assert AuditEvent.objects.get(seq=1).message == "event 0"


@pytest.mark.django_db
def test_the_database_refuses_a_raw_delete_of_an_event() -> None:
    append(2)
    with pytest.raises(DatabaseError, match="append-only"):
        raw("DELETE FROM audit_auditevent WHERE seq = 2")
    with pytest.raises(DatabaseError, match="append-only"):
        raw("DELETE FROM audit_auditevent")
    assert AuditEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)  # committed rows: TRUNCATE meets the trigger, not pending FK checks
def test_the_database_refuses_to_truncate_the_audit_table() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no TRUNCATE; its DELETE without WHERE is refused above")
    append(1)
    with pytest.raises(DatabaseError, match="append-only"):
        raw("TRUNCATE audit_auditevent")
    with pytest.raises(DatabaseError, match="append-only"):
        raw("TRUNCATE auth_user, audit_auditevent CASCADE")
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db
def test_the_maintenance_window_lets_the_test_suite_change_events() -> None:
    append(1)
    with maintenance_window(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET message = 'tampered' WHERE seq = 1")
    assert AuditEvent.objects.get().message == "tampered"
    # ... and closes again behind it.
    with pytest.raises(DatabaseError, match="append-only"):
        raw("UPDATE audit_auditevent SET message = 'again' WHERE seq = 1")


@pytest.mark.django_db(transaction=True)
def test_the_test_suites_flush_empties_every_table_the_audit_log_included_and_keeps_the_sequences() -> None:
    """What a transactional test's teardown runs (on PostgreSQL it deletes the rows rather
    than truncating the tables): afterwards nothing is left, ids go on from where they were."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    append(3)
    user = User.objects.create(username="flushed")
    call_command("flush", verbosity=0, interactive=False, reset_sequences=False, allow_cascade=False)
    assert not AuditEvent.objects.exists() and not User.objects.exists()
    # What post_migrate makes is there, as after Django's own flush.
    from django.contrib.auth.models import Permission

    assert Permission.objects.filter(codename="add_user", content_type__app_label="auth").exists()
    assert User.objects.create(username="after").pk > user.pk
    append(1)  # the chain starts again, and the triggers guard it as before
    with pytest.raises(DatabaseError, match="append-only"):
        raw("DELETE FROM audit_auditevent")


@pytest.mark.django_db(transaction=True)
def test_outside_the_test_suite_neither_flush_nor_the_window_can_empty_the_log() -> None:
    append(2)
    env = {
        "DATABASE_URL": _test_database_url(),
        "PATH": os.environ["PATH"],
        "RELEASEBOARD_VAR_DIR": os.environ["RELEASEBOARD_VAR_DIR"],
    }
    flush = subprocess.run(
        [sys.executable, "manage.py", "flush", "--no-input"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert flush.returncode != 0 and "couldn't be flushed" in flush.stderr, flush.stderr
    assert AuditEvent.objects.count() == 2
    window = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup()\n"
            "from releaseboard.audit.maintenance import maintenance_window\n"
            "with maintenance_window(): pass",
        ],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "releaseboard.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert window.returncode != 0 and "MaintenanceRefused" in window.stderr


@pytest.mark.django_db
def test_the_append_only_triggers_are_installed() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_auditevent'::regclass AND NOT tgisinternal"
            )
            assert {r[0] for r in cursor.fetchall()} == {"audit_auditevent_append_only"}
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_auditevent'")
            assert {r[0] for r in cursor.fetchall()} == {"audit_auditevent_no_update", "audit_auditevent_no_delete"}


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_appends_form_one_chain() -> None:
    start = threading.Barrier(50)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            with transaction.atomic():
                record("job.started", actor=None, message=f"writer {n}")
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 51))
    assert {m for m in AuditEvent.objects.values_list("message", flat=True)} == {f"writer {n}" for n in range(50)}
    report = verify()
    assert report.ok, report.lines()
    assert report.head_seq == 50
