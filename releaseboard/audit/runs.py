"""Full verifications of the audit chain as background runs: requested from the page or
the command line, executed by a worker, progress and result kept in VerificationRun."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from releaseboard.audit.models import AuditEvent, VerificationRun
from releaseboard.audit.verify import verify

log = logging.getLogger(__name__)

# A run whose worker wrote no progress for this long is shown as stopped, and a new
# run may be requested (a chunk of 5,000 events takes well under a second).
STALLED_AFTER = dt.timedelta(minutes=2)


def latest() -> VerificationRun | None:
    return VerificationRun.objects.order_by("-id").first()


def is_stalled(run: VerificationRun) -> bool:
    seen = run.heartbeat_at or run.requested_at
    return run.is_active and timezone.now() - seen > STALLED_AFTER


def request(requested_by: str) -> tuple[VerificationRun, bool]:
    """Queue a full verification, or answer with the one already under way (a second
    click does not start a second walk of the chain). Returns (run, created)."""
    from releaseboard.audit.tasks import run_verification

    with transaction.atomic():
        current = VerificationRun.objects.select_for_update().filter(state__in=VerificationRun.State.active()).first()
        if current is not None and not is_stalled(current):
            return current, False
        if current is not None:
            current.state = VerificationRun.State.ERROR
            current.summary = "The worker running this verification stopped answering; a new run replaced it."
            current.finished_at = timezone.now()
            current.save(update_fields=["state", "summary", "finished_at"])
        target = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        run = VerificationRun.objects.create(requested_by=requested_by, target_seq=target)
        run_id = run.pk
        transaction.on_commit(lambda: _publish(run_verification, run_id))
    return run, True


def _publish(task: object, run_id: int) -> None:
    try:
        task.apply_async(args=(run_id,))  # type: ignore[attr-defined]
    except Exception as exc:  # broker down: the run waits; the page says so and offers a retry
        log.warning("could not publish audit verification %s: %s", run_id, exc)


def execute(run_id: int) -> VerificationRun | None:
    """Claim the run (one conditional UPDATE) and walk the chain up to its target seq."""
    now = timezone.now()
    claimed = VerificationRun.objects.filter(pk=run_id, state=VerificationRun.State.QUEUED).update(
        state=VerificationRun.State.RUNNING, started_at=now, heartbeat_at=now
    )
    if not claimed:
        return None
    run = VerificationRun.objects.get(pk=run_id)

    def progress(seq: int, events: int) -> None:
        VerificationRun.objects.filter(pk=run_id).update(
            checked_seq=seq, checked_events=events, heartbeat_at=timezone.now()
        )

    try:
        report = verify(up_to_seq=run.target_seq, progress=progress)
    except Exception as exc:
        log.exception("audit verification %s failed", run_id)
        VerificationRun.objects.filter(pk=run_id).update(
            state=VerificationRun.State.ERROR,
            summary=f"The verification could not finish: {exc}",
            finished_at=timezone.now(),
        )
        raise
    VerificationRun.objects.filter(pk=run_id).update(
        state=VerificationRun.State.INTACT if report.ok else VerificationRun.State.NOT_INTACT,
        checked_seq=report.head_seq,
        checked_events=report.events,
        summary=report.summary,
        problems=[{"seq": p.seq, "text": p.text} for p in report.problems],
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    return VerificationRun.objects.get(pk=run_id)
