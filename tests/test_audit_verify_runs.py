"""The verification page answers in constant time: it checks the signed checkpoints and
only the events after the latest one, and shows the kept result of the last full
verification, which runs on a worker with its progress."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from releaseboard.audit import chain, checkpoint, runs
from releaseboard.audit.models import AuditEvent, VerificationRun
from releaseboard.audit.verify import verify, verify_recent
from tests.conftest import wait_for
from tests.test_audit_verify import append, rebuild_chain_from, tamper


@pytest.fixture(autouse=True)
def checkpoint_dir(settings: Any, tmp_path: Path) -> Path:
    settings.AUDIT_KEY_FILE = tmp_path / "keys" / "audit-key"
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "checkpoints"
    return settings.AUDIT_CHECKPOINT_DIR


@pytest.mark.django_db
def test_the_quick_check_starts_after_the_latest_matching_checkpoint() -> None:
    append(6)
    checkpoint.write(created_by="test")
    append(3)
    report = verify_recent()
    assert report.ok and report.from_seq == 7 and report.head_seq == 9 and report.events == 9
    assert "up to seq 6 as a signed checkpoint pinned it, 3 event(s) after it recomputed" in report.summary


@pytest.mark.django_db
def test_the_quick_check_reads_the_same_number_of_rows_whatever_the_size_of_the_log() -> None:
    def queries_for(events_before: int) -> tuple[int, int]:
        append(events_before)
        checkpoint.write(created_by="test")
        append(3)
        with CaptureQueriesContext(connection) as captured:
            report = verify_recent()
        assert report.ok
        return len(captured.captured_queries), report.head_seq - report.from_seq + 1

    small = queries_for(5)
    large = queries_for(400)
    # Same queries, and only the three events after the checkpoint are recomputed.
    assert small == large == (small[0], 3)


@pytest.mark.django_db
def test_the_page_reads_no_event_before_the_checkpoint_and_counts_none(client: Client, ops: Any) -> None:
    """What keeps the page's cost flat at a million events: every query it sends to the
    events table is bounded below by the checkpoint's seq (the pinned event, the walk
    after it), and none counts rows."""
    append(30)
    checkpoint.write(created_by="test")
    append(3)
    client.force_login(ops)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("web:audit_verify"))
    assert response.status_code == 200 and response.context["report"].ok
    assert "The audit log is intact: 33 events, seq 1 to 33 (quick check" in response.content.decode()
    on_events = [q["sql"] for q in captured.captured_queries if "audit_auditevent" in q["sql"]]
    assert on_events, "the page checks the events"
    for sql in on_events:
        assert "COUNT(" not in sql.upper(), f"the page counts audit events: {sql}"
        bounds = re.findall(r'"seq" (?:>=|>|=|IN) \(?([0-9, ]+)\)?', sql)
        assert bounds, f"a read of audit events with no lower bound on seq: {sql}"
        values = [int(v) for bound in bounds for v in bound.split(",") if v.strip()]
        assert min(values) >= 30, f"a read of audit events before the checkpoint (seq 30): {sql}"


@pytest.mark.django_db
def test_the_quick_check_catches_edits_after_the_checkpoint_a_rebuilt_chain_and_a_cut_tail() -> None:
    append(4)
    checkpoint.write(created_by="test")
    append(3)
    tamper("UPDATE audit_auditevent SET message = 'x' WHERE seq = 6")
    assert verify_recent().first_bad_seq == 6

    tamper("UPDATE audit_auditevent SET message = 'nothing happened' WHERE seq = 2")
    rebuild_chain_from(2)
    report = verify_recent()
    assert not report.ok and report.full, "no checkpoint matches any more: the whole chain is walked"
    assert any("its hash is not the one signed in checkpoint" in line for line in report.lines())


def _close_up(deleted_seq: int, rebuild: bool) -> None:
    """Remove an event and renumber the ones after it to close the gap; with `rebuild`,
    recompute their hashes too, so the chain after it is consistent again."""
    tamper(f"DELETE FROM audit_auditevent WHERE seq = {deleted_seq}")
    # Two steps, so no statement ever holds two rows with the same (unique) seq.
    tamper(f"UPDATE audit_auditevent SET seq = seq + 1000 WHERE seq > {deleted_seq}")
    tamper(f"UPDATE audit_auditevent SET seq = seq - 1001 WHERE seq > {deleted_seq + 1000}")
    if rebuild:
        rebuild_chain_from(deleted_seq)


@pytest.mark.django_db
def test_the_quick_check_catches_a_deleted_event_after_the_checkpoint() -> None:
    append(4)
    checkpoint.write(created_by="test")
    append(4)
    tamper("DELETE FROM audit_auditevent WHERE seq = 6")
    report = verify_recent()
    assert not report.ok and not report.full, "found without walking from seq 1"
    assert report.first_bad_seq == 6
    assert "seq 6: seq 6 missing (deleted); the next event is seq 7." in report.lines()[1]


@pytest.mark.django_db
def test_the_quick_check_catches_a_deleted_event_after_the_checkpoint_with_the_seqs_closed_up() -> None:
    append(4)
    checkpoint.write(created_by="test")
    append(4)
    _close_up(6, rebuild=False)
    report = verify_recent()
    assert not report.ok and report.from_seq == 5 and report.first_bad_seq == 6
    assert any("seq 6: its prev_hash is not the hash of seq 5" in line for line in report.lines())


@pytest.mark.django_db
def test_the_quick_check_catches_a_deleted_event_between_two_checkpoints() -> None:
    append(4)
    checkpoint.write(created_by="test")
    append(4)
    checkpoint.write(created_by="test")
    _close_up(6, rebuild=True)
    report = verify_recent()
    assert not report.ok
    # The later checkpoint's pinned seq 8 is gone and its signed count is not reached.
    assert report.from_seq == 5 and report.first_bad_seq == 8
    assert any("signed 8 events up to seq 8; the tail was truncated" in line for line in report.lines())


@pytest.mark.django_db
def test_the_quick_check_catches_an_event_inserted_after_the_checkpoint() -> None:
    append(4)
    checkpoint.write(created_by="test")
    append(3)
    # Make room at seq 6 and insert a well-formed event there, chained to seq 5.
    tamper("UPDATE audit_auditevent SET seq = seq + 1000 WHERE seq >= 6")
    tamper("UPDATE audit_auditevent SET seq = seq - 999 WHERE seq >= 1006")
    forged = AuditEvent(actor_name="mallory", action="branch.requested", message="never happened", seq=6)
    forged.prev_hash = AuditEvent.objects.get(seq=5).hash
    forged.created_at = AuditEvent.objects.get(seq=5).created_at
    forged.hash = chain.event_hash(forged, forged.prev_hash)
    forged.save()
    report = verify_recent()
    assert not report.ok and report.from_seq == 5 and report.first_bad_seq == 7
    lines = report.lines()
    assert any("seq 7: its prev_hash is not the hash of seq 6" in line for line in lines)
    assert any("seq 7: stored out of order" in line for line in lines)
    assert any("seq 7: its content does not match its hash" in line for line in lines)


@pytest.mark.django_db
def test_a_deleted_event_before_the_checkpoint_is_found_by_the_full_run_and_blocks_the_next_checkpoint() -> None:
    append(6)
    checkpoint.write(created_by="test")
    append(2)
    tamper("DELETE FROM audit_auditevent WHERE seq = 2")
    # By design, like an old edit: the quick check does not read the events before the
    # checkpoint (that is what keeps it constant), and takes the 6 it signed.
    report = verify_recent()
    assert report.ok and report.from_seq == 7 and report.events == 8
    # No new checkpoint is signed over the gap...
    with pytest.raises(checkpoint.CheckpointRefused, match=r"1 event\(s\) at or before seq 8 are missing"):
        checkpoint.write(created_by="test")
    assert len(checkpoint.read_files()[0]) == 1
    # ...and the full verification finds it.
    run, _ = runs.request(requested_by="ops")
    finished = runs.execute(run.pk)
    assert finished is not None and finished.state == VerificationRun.State.NOT_INTACT
    assert finished.problems[0]["seq"] == 2 and "seq 2 missing (deleted)" in finished.problems[0]["text"]


@pytest.mark.django_db
def test_an_old_edit_the_quick_check_cannot_see_is_found_by_the_full_verification_run() -> None:
    append(6)
    checkpoint.write(created_by="test")
    tamper("UPDATE audit_auditevent SET message = 'x' WHERE seq = 2")
    assert verify_recent().ok, "by design: the quick check trusts what the checkpoint pinned"
    run, created = runs.request(requested_by="ops")
    assert created and run.target_seq == 6
    finished = runs.execute(run.pk)
    assert finished is not None and finished.state == VerificationRun.State.NOT_INTACT
    assert finished.problems[0]["seq"] == 2 and "was edited" in finished.problems[0]["text"]
    assert finished.checked_seq == 6 and finished.finished_at is not None


@pytest.mark.django_db
def test_a_second_request_while_a_run_is_active_gets_the_same_run_and_a_stalled_one_is_replaced() -> None:
    append(2)
    first, created = runs.request(requested_by="ops")
    again, created_again = runs.request(requested_by="ops2")
    assert created and not created_again and again.pk == first.pk
    VerificationRun.objects.filter(pk=first.pk).update(
        state=VerificationRun.State.RUNNING, heartbeat_at=timezone.now() - dt.timedelta(minutes=5)
    )
    replacement, created = runs.request(requested_by="ops2")
    assert created and replacement.pk != first.pk
    first.refresh_from_db()
    assert first.state == VerificationRun.State.ERROR and "stopped answering" in first.summary
    assert runs.execute(first.pk) is None, "a replaced run is never claimed again"


@pytest.mark.django_db
def test_progress_is_written_while_the_chain_is_walked() -> None:
    append(12)
    seen: list[tuple[int, int]] = []
    import releaseboard.audit.verify as verify_module

    old = verify_module.CHUNK
    verify_module.CHUNK = 5
    try:
        verify(progress=lambda seq, events: seen.append((seq, events)))
    finally:
        verify_module.CHUNK = old
    assert seen == [(5, 5), (10, 10)]


@pytest.mark.django_db
def test_ops_starts_a_full_verification_from_the_page_and_sees_its_result(client: Client, ops: Any) -> None:
    append(3)
    client.force_login(ops)
    page = client.get(reverse("web:audit_verify")).content.decode()
    assert "No full verification has run yet." in page and "Run a full verification" in page
    page = client.post(reverse("web:audit_verify_full"), follow=True).content.decode()
    assert "Full verification started" in page
    assert "is waiting for a worker" in page and 'hx-trigger="every 2s"' in page
    run = runs.latest()
    assert run is not None
    runs.execute(run.pk)
    fragment = client.get(reverse("web:audit_verify") + "?fragment=run", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 286, "the poller stops once the run has ended"
    body = fragment.content.decode()
    assert "Intact" in body and "The audit log is intact: 3 events" in body and "<h1>" not in body


@pytest.mark.django_db
def test_a_developer_cannot_start_a_full_verification(client: Client, developer: Any) -> None:
    client.force_login(developer)
    assert client.post(reverse("web:audit_verify_full")).status_code == 403
    assert not VerificationRun.objects.exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_full_verification(celery_worker: Any) -> None:
    append(7)
    run, _ = runs.request(requested_by="ops")

    def finished() -> bool:
        run.refresh_from_db()
        return not run.is_active

    wait_for(finished, timeout=60, what="the full verification to finish")
    assert run.state == VerificationRun.State.INTACT and run.checked_events == 7
