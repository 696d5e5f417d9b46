"""Verification catches every kind of tampering, done to the real database by someone
with database access (through the triggers' maintenance window), and names the first
bad seq. Checkpoints are signed files that are never overwritten."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from releaseboard.audit import chain, checkpoint
from releaseboard.audit.maintenance import maintenance_window
from releaseboard.audit.models import AuditEvent, Checkpoint
from releaseboard.audit.service import record
from releaseboard.audit.verify import verify

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def checkpoint_dir(settings: Any, tmp_path: Path) -> Path:
    settings.AUDIT_KEY_FILE = tmp_path / "keys" / "audit-key"
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "checkpoints"
    return settings.AUDIT_CHECKPOINT_DIR


def append(count: int) -> None:
    with transaction.atomic():
        for _ in range(count):
            n = AuditEvent.objects.count() + 1
            record("branch.requested", actor=None, message=f"event {n}", details={"n": n})


def tamper(*statements: str) -> None:
    """What an attacker with database access does: raw SQL past the triggers."""
    with maintenance_window(), connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def rebuild_chain_from(seq: int) -> None:
    """Recompute every hash from `seq` on, so the chain is consistent again."""
    prev = AuditEvent.objects.get(seq=seq - 1).hash if seq > 1 else chain.GENESIS
    for event in AuditEvent.objects.filter(seq__gte=seq).order_by("seq"):
        digest = chain.event_hash(event, prev)
        tamper(f"UPDATE audit_auditevent SET prev_hash = '{prev}', hash = '{digest}' WHERE id = {event.pk}")
        prev = digest


def verify_command() -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("audit_verify", stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_an_untouched_log_verifies_and_the_command_exits_zero() -> None:
    append(5)
    checkpoint.write(created_by="test")
    append(2)
    code, output = verify_command()
    assert code == 0
    assert "intact: 7 events, seq 1 to 7" in output


def test_an_edited_event_is_caught_at_its_seq() -> None:
    append(5)
    tamper("UPDATE audit_auditevent SET message = 'nothing happened' WHERE seq = 3")
    report = verify()
    assert report.first_bad_seq == 3
    assert "seq 3: its content does not match its hash (the event was edited)" in report.lines()[1]
    code, output = verify_command()
    assert code == 1 and "first bad seq: 3" in output


def test_a_deleted_event_is_caught_as_a_gap() -> None:
    append(5)
    tamper("DELETE FROM audit_auditevent WHERE seq = 2")
    report = verify()
    assert report.first_bad_seq == 2
    assert "seq 2: seq 2 missing (deleted); the next event is seq 3." in report.lines()[1]


def test_a_deleted_event_with_the_seqs_closed_up_is_caught_by_the_broken_link() -> None:
    append(5)
    tamper(
        "DELETE FROM audit_auditevent WHERE seq = 2",
        *(f"UPDATE audit_auditevent SET seq = {s - 1} WHERE seq = {s}" for s in (3, 4, 5)),
    )
    report = verify()
    assert report.first_bad_seq == 2 and not report.ok


def test_reordered_events_are_caught() -> None:
    append(5)
    tamper(
        "UPDATE audit_auditevent SET seq = -3 WHERE seq = 3",
        "UPDATE audit_auditevent SET seq = 3 WHERE seq = 4",
        "UPDATE audit_auditevent SET seq = 4 WHERE seq = -3",
    )
    report = verify()
    assert report.first_bad_seq == 3
    assert "seq 3: its prev_hash is not the hash of seq 2" in report.lines()[1]


def test_a_rebuilt_chain_is_caught_by_the_signed_checkpoint() -> None:
    append(3)
    checkpoint.write(created_by="test")
    append(3)
    checkpoint.write(created_by="test")
    append(2)
    tamper("UPDATE audit_auditevent SET message = 'nothing happened' WHERE seq = 5")
    rebuild_chain_from(5)
    report = verify()
    assert not report.ok
    assert report.first_bad_seq == 6
    assert (
        "seq 6: its hash is not the one signed in checkpoint checkpoint-000000000006-" in report.lines()[1]
        and "rewritten at or before seq 6 (after seq 3, the last checkpoint that still matches)" in report.lines()[1]
    )


def test_a_truncated_tail_is_caught_by_the_checkpoint_count() -> None:
    append(8)
    checkpoint.write(created_by="test")
    tamper("DELETE FROM audit_auditevent WHERE seq >= 7")
    report = verify()
    assert report.first_bad_seq == 7
    assert "the log ends at seq 6 with 6 events, but checkpoint" in report.lines()[1]
    assert "signed 8 events up to seq 8; the tail was truncated." in report.lines()[1]


def test_an_emptied_log_is_caught_by_the_checkpoint_count() -> None:
    append(3)
    checkpoint.write(created_by="test")
    tamper("DELETE FROM audit_auditevent")
    assert verify().first_bad_seq == 1


def test_a_forged_checkpoint_file_is_not_trusted(checkpoint_dir: Path) -> None:
    append(3)
    written = checkpoint.write(created_by="test")
    path = checkpoint_dir / written.file_name
    document = json.loads(path.read_text())
    forged = checkpoint_dir / "checkpoint-000000000009-forged.json"
    forged.write_text(json.dumps(document | {"seq": 9, "count": 9}))
    report = verify()
    assert [c.name for c in report.checkpoints] == [written.file_name]
    assert any("checkpoint-000000000009-forged.json: its signature does not match" in line for line in report.lines())


def test_verification_trusts_the_signed_files_not_the_database_rows(checkpoint_dir: Path) -> None:
    append(4)
    written = checkpoint.write(created_by="test")
    tamper("DELETE FROM audit_auditevent WHERE seq = 4")
    # The attacker also edits the database's copy of the checkpoint; the file still says 4.
    Checkpoint.objects.filter(pk=written.pk).update(seq=3, count=3, head_hash="x")
    assert verify().first_bad_seq == 4


def test_a_broken_chain_is_never_signed() -> None:
    append(3)
    tamper("UPDATE audit_auditevent SET action = 'x' WHERE seq = 2")
    with pytest.raises(checkpoint.CheckpointRefused, match="First bad seq: 2"):
        checkpoint.write(created_by="test")
    assert Checkpoint.objects.count() == 0


def test_checkpoints_are_signed_files_that_are_never_overwritten(checkpoint_dir: Path, settings: Any) -> None:
    append(2)
    first = checkpoint.write(created_by="test")
    second = checkpoint.write(created_by="test")
    assert first.file_name != second.file_name
    assert sorted(p.name for p in checkpoint_dir.iterdir()) == sorted([first.file_name, second.file_name])
    document = json.loads((checkpoint_dir / first.file_name).read_text())
    assert {k: document[k] for k in ("count", "seq", "head_hash")} == {
        "count": 2,
        "seq": 2,
        "head_hash": AuditEvent.objects.get(seq=2).hash,
    }
    key_file = Path(settings.AUDIT_KEY_FILE)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) == 64 and checkpoint.sign(document, key.encode()) == document["signature"]
    assert not Checkpoint.objects.filter(signature__contains=key).exists()


def test_the_periodic_checkpoint_skips_when_nothing_was_appended(checkpoint_dir: Path) -> None:
    append(2)
    assert checkpoint.write_if_changed(created_by="beat") is not None
    assert checkpoint.write_if_changed(created_by="beat") is None
    assert len(list(checkpoint_dir.glob("checkpoint-*.json"))) == 1
    append(1)
    checkpoint.write_if_changed(created_by="beat")
    assert sorted(c.seq for c in checkpoint.read_files()[0]) == [2, 3]


def test_ops_sees_the_verification_and_can_sign_a_checkpoint(client: Client, ops: Any, checkpoint_dir: Path) -> None:
    append(3)
    client.force_login(ops)
    response = client.post(reverse("web:audit_checkpoint"), follow=True)
    page = response.content.decode()
    assert "Signed checkpoint at seq 3 (3 events)" in page
    assert "The audit log is intact: 3 events, seq 1 to 3" in page
    assert len(list(checkpoint_dir.glob("checkpoint-*.json"))) == 1
    append(2)
    tamper("UPDATE audit_auditevent SET message = 'x' WHERE seq = 4")
    page = client.get(reverse("web:audit_verify")).content.decode()
    assert "NOT intact" in page and "First bad seq: 4." in page
