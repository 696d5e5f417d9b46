"""Running one job: claim, heartbeat, steps and log, cancel checks, one final state."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from releaseboard.audit.service import record as audit_record
from releaseboard.jobs import faults, registry
from releaseboard.jobs.models import Job, JobLogLine, JobReason, JobState, JobStep, Lease
from releaseboard.jobs.service import _scope

log = logging.getLogger(__name__)

LOG_TEXT_LIMIT = 64 * 1024
CANCEL_CHECK_SECONDS = 1.0
LEASE_WAIT_SECONDS = 0.5
# A running job writes its buffered log lines and steps at most this long after logging
# them (see JobContext); a reader following the log sees them that much later at most.
LOG_FLUSH_SECONDS = 0.25
# git commands that talk to the remote: written before they start (see command_started).
REMOTE_GIT_COMMANDS = frozenset({"git fetch", "git push", "git ls-remote", "git clone"})


# What a flush writes: log lines, new steps, steps written earlier that ended since.
_Pending = tuple[list[JobLogLine], list[JobStep], list[JobStep]]


class JobFailed(Exception):
    """A runner ends its job as FAILED with a reason code and a message for people."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


class JobCancelled(Exception):
    pass


class LeaseLost(Exception):
    """This worker no longer owns the job; it must not write anything more."""


class JobWaiting(Exception):
    """The runner cannot go on yet (e.g. a required CI status has not arrived): the job
    goes back to the queue, without counting as an attempt and without holding a worker
    slot, and runs again after `retry_in` seconds."""

    def __init__(self, message: str, retry_in: float) -> None:
        self.message = message
        self.retry_in = retry_in
        super().__init__(message)


def sanitize(text: str, secrets: Sequence[str] = ()) -> str:
    """Make command output safe to store: no NUL bytes, capped, secrets masked."""
    text = text.replace("\x00", "")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    if len(text) > LOG_TEXT_LIMIT:
        text = text[:LOG_TEXT_LIMIT] + "\n[... cut ...]\n"
    return text


class JobContext:
    """What a runner gets: the job, its log, steps, cancel checks and lease-guarded writes.

    The log and the steps are buffered and written in bulk, in one transaction (one
    INSERT of the buffered steps, one of the buffered lines, one UPDATE of Job.log_lines):
    - once LOG_FLUSH_SECONDS have passed since the last write, checked whenever the job
      logs, starts or ends a step, and every 0.2 s while a build or test command runs
      (`cancel_requested`), so a reader following the log sees a line that much later;
    - before a git command that talks to the remote (it leaves the machine and may take
      long), and when a build, test or deploy command starts (`start_step`);
    - inside the lease-checked transaction of `atomic` and `assert_lease`, so before
      every domain commit and every push;
    - when `hold` starts to wait, and in the transaction of the job's final state (a
      reader that sees the job final has every line).
    A step still running at a write is written then (pages show it running) and updated
    when it ends. `seq` stays contiguous and ordered: lines and steps are numbered when
    logged, written in that order, and a write that rolls back puts them back for the
    next one. No write happens inside a transaction the runner opened itself (a
    rollback there would leave a hole); they wait for the next write outside it.

    What a crash can lose: a worker killed outright (SIGKILL, power loss) loses what it
    logged since its last write, at most about LOG_FLUSH_SECONDS of log or one local git
    command still running; the job's next attempt numbers on from what was written.
    """

    def __init__(self, job: Job, token: str) -> None:
        self.job = job
        self.token = token
        self.params: dict[str, Any] = job.params
        if job.attempt == 1 and job.waits == 0:
            # The first run of a job: nothing has logged to it yet.
            self._seq = self._step_seq = 0
        else:  # a re-run goes on from what earlier runs wrote
            self._seq = JobLogLine.objects.filter(job=job).count()
            self._step_seq = JobStep.objects.filter(job=job).count()
        self._lines: list[JobLogLine] = []
        self._new_steps: list[JobStep] = []  # not written yet
        self._ended_steps: list[JobStep] = []  # written while running, ended since
        self._flushed_at = time.monotonic()
        # The claim has just read the row: the first cancel check needs no query.
        self._cancel_checked_at = time.monotonic()
        self._cancel_requested = job.cancel_requested_at is not None
        self.lease_lost = threading.Event()
        self.held_leases: set[str] = set()
        self.secrets: list[str] = []

    # -- log and steps ------------------------------------------------------------------

    def log(self, text: str, *, flush: bool = True) -> None:
        """Add `text` to the log; written within LOG_FLUSH_SECONDS (with `flush` False,
        only at the next flush)."""
        self._add_line(text)
        if flush:
            self.flush_if_due()

    @property
    def lines_logged(self) -> int:
        """The `seq` of the last line logged (written or still buffered)."""
        return self._seq

    def _add_line(self, text: str) -> None:
        text = sanitize(text, self.secrets)
        if text:
            self._seq += 1
            self._lines.append(JobLogLine(job_id=self.job.pk, seq=self._seq, text=text))

    def section(self, title: str) -> None:
        self.log(f"\n== {title} ==\n")

    def start_step(self, name: str, command: str = "", *, flush: bool = True) -> JobStep:
        """Record the start of a step. A step started here (a build, the tests, a deploy
        command) may run for long: it is written at once, unless `flush` is False."""
        self._step_seq += 1
        step = JobStep(
            job_id=self.job.pk, seq=self._step_seq, name=name[:255], command=command, started_at=timezone.now()
        )
        self._new_steps.append(step)
        if command:
            self._add_line(f"$ {command}\n")
        if flush:
            self.flush_outside_transaction()
        else:
            self.flush_if_due()
        return step

    def finish_step(self, step: JobStep, exit_code: int | None, outcome: str) -> None:
        step.exit_code = exit_code
        step.outcome = outcome
        step.finished_at = timezone.now()
        if not step._state.adding:  # written while it ran: its row is updated at the next flush
            self._ended_steps.append(step)
        self.flush_if_due()

    # vcs.CommandObserver: each git command is a step with its output in the log.
    def command_started(self, argv: Sequence[str]) -> object:
        self.raise_if_lost()
        command = " ".join(argv)
        if argv[:1] != ["git"]:
            return self.start_step(" ".join(argv[:4])[:255], command)
        name = _git_step_name(argv)
        # A command that talks to the remote leaves the machine and may take long: what
        # came before it, and its running step, are written first.
        return self.start_step(name, command, flush=name in REMOTE_GIT_COMMANDS)

    def command_finished(self, token: object, returncode: int, output: str) -> None:
        if output.strip():
            self.log(output if output.endswith("\n") else output + "\n")
        assert isinstance(token, JobStep)
        self.finish_step(token, returncode, "ok" if returncode == 0 else "failed")

    def flush_if_due(self) -> None:
        """Write the buffered lines and steps if LOG_FLUSH_SECONDS passed since the last
        write. Never inside a transaction: lines written there would vanish with a
        rollback and leave a hole in `seq`."""
        if time.monotonic() - self._flushed_at >= LOG_FLUSH_SECONDS:
            self.flush_outside_transaction()

    def flush_outside_transaction(self, *, count_lines: bool = True) -> None:
        """Write what is buffered now, unless a transaction is open (then it waits for the
        next flush outside it, or the final one)."""
        if not connection.in_atomic_block:
            self.flush(count_lines=count_lines)

    def flush(self, *, count_lines: bool = True) -> None:
        """Write the buffered steps and lines in one transaction: one INSERT each, one
        UPDATE of each step that ended after it was written, and Job.log_lines (unless
        `count_lines` is False: the caller writes it in its own UPDATE of the job)."""
        pending = self._take()
        if pending is None:
            return
        try:
            with transaction.atomic(savepoint=False):
                self._write(pending)
                if count_lines and pending[0]:
                    Job.objects.filter(pk=self.job.pk).update(log_lines=pending[0][-1].seq)
        except BaseException:
            self._restore(pending)
            raise

    def _take(self) -> _Pending | None:
        self._flushed_at = time.monotonic()
        pending = (self._lines, self._new_steps, self._ended_steps)
        if not any(pending):
            return None
        self._lines, self._new_steps, self._ended_steps = [], [], []
        return pending

    def _write(self, pending: _Pending) -> None:
        lines, steps, ended = pending
        if steps:
            JobStep.objects.bulk_create(steps)
        for step in ended:
            JobStep.objects.filter(job_id=self.job.pk, seq=step.seq).update(
                exit_code=step.exit_code, outcome=step.outcome, finished_at=step.finished_at
            )
        if lines:
            JobLogLine.objects.bulk_create(lines)

    def _restore(self, pending: _Pending) -> None:
        """Put back what a write that was rolled back had taken, ahead of what came since:
        the next flush writes it, and `seq` keeps no hole."""
        lines, steps, ended = pending
        for step in steps:
            step._state.adding = True
        self._lines = lines + self._lines
        self._new_steps = steps + self._new_steps
        self._ended_steps = [s for s in ended + self._ended_steps if not s._state.adding]

    def flush_if_still_held(self) -> None:
        """The last write of a run that lost its job (lease lost, or the process is being
        stopped): its buffered lines are written only while no other worker has taken the
        job, so they never collide with that worker's lines; else they are dropped."""
        if not (self._lines or self._new_steps or self._ended_steps):
            return
        with transaction.atomic():
            if Job.objects.filter(pk=self.job.pk, lease_token=self.token, state=JobState.RUNNING).update(
                log_lines=self._seq
            ):
                self.flush(count_lines=False)

    # -- cancel and lease ------------------------------------------------------------------

    def cancel_requested(self) -> bool:
        """Whether a user asked to cancel (read from the DB at most once a second)."""
        if self.lease_lost.is_set():
            return True
        self.flush_if_due()  # a running command's output, while it runs
        now = time.monotonic()
        if not self._cancel_requested and now - self._cancel_checked_at >= CANCEL_CHECK_SECONDS:
            self._cancel_checked_at = now
            self._cancel_requested = Job.objects.filter(pk=self.job.pk, cancel_requested_at__isnull=False).exists()
        return self._cancel_requested

    def check_cancel(self) -> None:
        """Called between steps: stop here if a user cancelled or the lease was lost."""
        self.raise_if_lost()
        self.flush_if_due()
        self._cancel_checked_at = 0.0
        if self.cancel_requested():
            raise JobCancelled()

    def raise_if_lost(self) -> None:
        if self.lease_lost.is_set():
            raise LeaseLost()

    def checkpoint(self, point: str) -> None:
        """A named step where tests may pause or kill this worker (see jobs.faults)."""
        faults.checkpoint(point, self.job.pk)

    def assert_lease(self) -> None:
        """Right before an effect outside the database (a push): go on only while this
        worker still holds the job. A worker that was paused past its lease, and whose
        job another worker took over, stops here; the compare-and-swap push covers the
        remaining window, since the other worker's push moves the expected SHA."""
        self.raise_if_lost()
        if self._lines or self._new_steps or self._ended_steps:
            with self.atomic():  # the lease check and what is buffered, in one commit
                pass
        else:
            self._check_lease()

    def _check_lease(self) -> None:
        """The conditional UPDATE that proves this worker still holds the job. When every
        line is written it also sets Job.log_lines (saving the flush its own UPDATE)."""
        fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if not self._lines:  # every line is written, or is being written in this transaction
            fields["log_lines"] = self._seq
        renewed = Job.objects.filter(
            pk=self.job.pk, lease_token=self.token, state=JobState.RUNNING, lease_expires_at__gt=timezone.now()
        ).update(**fields)
        if renewed != 1:
            self.lease_lost.set()
            raise LeaseLost()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction that commits only while this worker still holds the job's lease.

        The lease is checked by a conditional UPDATE inside the transaction, so a worker
        that was paused past its lease (and whose job another worker took over) cannot
        commit a domain change after the fact.
        """
        pending = None if connection.in_atomic_block else self._take()
        try:
            with transaction.atomic():
                self._check_lease()
                if pending is not None:
                    # What the job logged so far commits with the domain change; should
                    # the transaction roll back, it is put back for the next flush.
                    self._write(pending)
                yield
        except BaseException:
            if pending is not None:
                self._restore(pending)
            raise

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold the named lease (e.g. one writer per repository) for the block.

        Waits while another job holds it, checking for cancel. The heartbeat renews it;
        if this worker dies the lease expires and the next job takes it.
        """
        waited = False
        while not _try_acquire(key, self.job.pk, self.token):
            if not waited:
                self.log(f"Waiting for {key}: another job is writing to it.\n", flush=False)
                self.flush_outside_transaction()  # shown while it waits
                waited = True
            self.check_cancel()
            time.sleep(LEASE_WAIT_SECONDS)
        self.held_leases.add(key)
        try:
            yield
        finally:
            self.held_leases.discard(key)
            Lease.objects.filter(key=key, holder_token=self.token).update(
                holder_job_id=None, holder_token="", expires_at=None
            )


def _git_step_name(argv: Sequence[str]) -> str:
    """ "git fetch", "git push": the subcommand, past options like -C <path> and -c <k=v>."""
    args, i = list(argv[1:]), 0
    while i < len(args):
        if args[i] in ("-c", "-C"):  # these options take a value: skip both
            i += 2
            continue
        if not args[i].startswith("-"):
            return f"git {args[i]}"[:255]
        i += 1
    return "git"


def _lease_deadline() -> Any:
    return timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def lease_busy(job_id: int) -> str | None:
    """The key of the lease a QUEUED job will need and another job holds now, or None.

    Read before the job is claimed, so a job that would only wait gives its worker slot
    back instead of sleeping in it (the task publishes it again with a countdown)."""
    key = Job.objects.filter(pk=job_id, state=JobState.QUEUED).values_list("lock_key", flat=True).first()
    if not key:
        return None
    held = (
        Lease.objects.filter(key=key, expires_at__gt=timezone.now())
        .exclude(holder_token="")
        .exclude(holder_job_id=job_id)
        .exists()
    )
    return key if held else None


def postpone(job_id: int, key: str) -> str | None:
    """Note on the QUEUED job that it waits for `key`, and mark it published now so the
    reaper does not publish it a second time while its delayed message is on its way.
    Returns the job's queue, or None if it is no longer queued (cancelled meanwhile)."""
    updated = Job.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        published_at=timezone.now(),
        message=f"Waiting for {key}: another job is writing to it. No worker is held while it waits.",
    )
    if not updated:
        return None
    return Job.objects.filter(pk=job_id).values_list("queue", flat=True).first()


def _try_acquire(key: str, job_id: int, token: str) -> bool:
    from django.db.models import Q

    def take() -> bool:
        # One conditional UPDATE: free, expired, or already ours.
        taken = (
            Lease.objects.filter(key=key)
            .filter(Q(holder_token="") | Q(expires_at__lt=timezone.now()) | Q(holder_token=token))
            .update(holder_job_id=job_id, holder_token=token, expires_at=_lease_deadline())
        )
        return taken == 1

    if take():
        return True
    # No row yet (the key's first use), or held by another job.
    _, created = Lease.objects.get_or_create(key=key)
    return created and take()


class Heartbeat(threading.Thread):
    """Renews the job's lease (and the named leases it holds) while the runner works."""

    def __init__(self, ctx: JobContext) -> None:
        super().__init__(name=f"heartbeat-{ctx.job.pk}", daemon=True)
        self.ctx = ctx
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.JOB_HEARTBEAT_SECONDS):
                now = timezone.now()
                renewed = Job.objects.filter(
                    pk=self.ctx.job.pk,
                    lease_token=self.ctx.token,
                    state=JobState.RUNNING,
                    lease_expires_at__gt=now,
                ).update(heartbeat_at=now, lease_expires_at=_lease_deadline())
                if renewed != 1:
                    self.ctx.lease_lost.set()
                    return
                for key in list(self.ctx.held_leases):
                    Lease.objects.filter(key=key, holder_token=self.ctx.token).update(expires_at=_lease_deadline())
        except Exception:  # a DB hiccup: the lease simply is not renewed this time
            log.exception("heartbeat failed for job %s", self.ctx.job.pk)
        finally:
            connection.close()


def claim(job_id: int) -> JobContext | None:
    """Take the job: one conditional UPDATE from QUEUED to RUNNING. None if another
    worker has it, or it was cancelled or finished already (a duplicate message)."""
    token = uuid.uuid4().hex
    now = timezone.now()
    with transaction.atomic():
        from django.db.models import F

        claimed = Job.objects.filter(pk=job_id, state=JobState.QUEUED).update(
            state=JobState.RUNNING,
            lease_token=token,
            lease_expires_at=_lease_deadline(),
            heartbeat_at=now,
            started_at=now,
            attempt=F("attempt") + 1,
            worker=f"{socket.gethostname()}:{threading.get_native_id()}",
        )
        if claimed != 1:
            return None
        job = Job.objects.get(pk=job_id)
        if job.waits == 0:  # a job that was waiting (JobWaiting) resumes without a new event
            audit_record("job.started", actor=None, repository=_scope(job), obj=job, details={"attempt": job.attempt})
    return JobContext(job, token)


def finish(ctx: JobContext, state: str, reason: str, message: str) -> bool:
    """Write the job's one final state, if this worker still holds it."""
    final = {
        "state": state,
        "reason": reason,
        "message": message[:5000],
        "finished_at": timezone.now(),
        "lease_expires_at": None,
        "log_lines": ctx.lines_logged,
    }
    with transaction.atomic():
        done = Job.objects.filter(pk=ctx.job.pk, lease_token=ctx.token, state=JobState.RUNNING).update(**final)
        if done != 1:
            return False
        # The rest of the log commits with the final state: a reader that sees the job
        # final has every line.
        ctx.flush(count_lines=False)
        # The row as claimed, with what was just written: while this worker held the job
        # nobody else changed the fields on_final and the audit event read.
        job = ctx.job
        for field, value in final.items():
            setattr(job, field, value)
        kind = registry.get(job.kind)
        if kind.on_final:
            kind.on_final(job)
        audit_record(
            f"job.{state}", actor=None, repository=_scope(job), obj=job, result=reason or state, message=message[:1000]
        )
    return True


def _wait(ctx: JobContext, waiting: JobWaiting) -> None:
    """Put a running job back in the queue until `waiting.retry_in` has passed. Only the
    first wait is an audit event (and a log line); later ones only update the message."""
    from django.db.models import F

    from releaseboard.jobs.service import publish

    first = ctx.job.waits == 0
    if first:
        ctx.log(f"\n{waiting.message}\nThe job waits without holding a worker and checks again.\n", flush=False)
    with transaction.atomic():
        moved = Job.objects.filter(pk=ctx.job.pk, lease_token=ctx.token, state=JobState.RUNNING).update(
            state=JobState.QUEUED,
            lease_token="",
            lease_expires_at=None,
            attempt=F("attempt") - 1,
            waits=F("waits") + 1,
            message=waiting.message[:5000],
            published_at=timezone.now(),
            log_lines=ctx.lines_logged,
        )
        if moved:
            ctx.flush(count_lines=False)  # before the job can run again and go on numbering
        if moved and first:
            job = Job.objects.get(pk=ctx.job.pk)
            audit_record("job.waiting", actor=None, repository=_scope(job), obj=job, message=waiting.message[:1000])
    if moved:
        publish(ctx.job.pk, countdown=waiting.retry_in)


def run(job_id: int) -> None:
    """Claim the job and run its kind's runner to exactly one final state."""
    ctx = claim(job_id)
    if ctx is None:
        log.info("job %s not claimed (taken, finished or cancelled)", job_id)
        return
    heartbeat = Heartbeat(ctx)
    heartbeat.start()
    # A str: a runner's JobFailed carries the reason code it was given (JobReason values are str).
    reason: str
    state, reason, message = JobState.FAILED, JobReason.ERROR, ""
    try:
        if ctx.job.attempt > ctx.job.max_attempts:
            raise JobFailed(
                JobReason.TOO_MANY_ATTEMPTS,
                f"Gave up after {ctx.job.max_attempts} attempts; the worker stopped each time.",
            )
        ctx.raise_if_lost()
        if ctx.cancel_requested():  # as read by the claim, a moment ago
            raise JobCancelled()
        message = registry.get(ctx.job.kind).runner(ctx) or "Done."
        state, reason = JobState.SUCCEEDED, JobReason.OK
    except JobFailed as exc:
        state, reason, message = JobState.FAILED, exc.reason, exc.message
    except JobCancelled:
        state, reason, message = (
            JobState.CANCELLED,
            JobReason.CANCELLED,
            "Cancelled on request; nothing was pushed after the cancel.",
        )
    except LeaseLost:
        log.warning("job %s lost its lease; leaving it to the worker that has it", job_id)
        with contextlib.suppress(Exception):
            ctx.flush_if_still_held()
        return
    except JobWaiting as waiting:
        heartbeat.stopped.set()
        heartbeat.join(timeout=10)
        _wait(ctx, waiting)
        return
    except Exception as exc:
        log.exception("job %s crashed", job_id)
        with contextlib.suppress(Exception):
            ctx.log("\n" + "".join(traceback.format_exception(exc))[-4000:])
        message = f"Internal error: {exc.__class__.__name__}: {exc}"
    except BaseException:  # the process is being stopped: keep what the job logged so far
        with contextlib.suppress(Exception):
            ctx.flush_if_still_held()
        raise
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=10)
    if message:
        with contextlib.suppress(Exception):
            ctx.log(f"\n{message}\n")
    if finish(ctx, state, reason, message):
        log.info("job %s (%s) %s: %s", job_id, ctx.job.kind, state, reason or "-")
