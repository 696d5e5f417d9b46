"""Check the audit log: the hash chain from seq 1, then the signed checkpoints.

What each check catches:
- an edited event: its content no longer gives its stored hash;
- a deleted event: a gap in seq, and the next event's prev_hash points at nothing;
- reordered events: an event's prev_hash is not the hash of the event before it in seq
  order (or ids run backwards);
- a rebuilt chain (every hash recomputed after an edit): the event at a signed
  checkpoint's seq no longer has the hash the checkpoint pinned;
- a truncated tail: fewer events than the latest signed checkpoint counted.
Events appended after the latest checkpoint are protected by the chain alone, until
the next checkpoint (AUDIT_CHECKPOINT_INTERVAL_SECONDS). A checkpoint is signed only
over a chain that verifies and has exactly `seq` events up to its head (no gap), so a
signed checkpoint's count equals its seq.

Two depths:
- `verify()` walks the whole chain. Its cost grows with the log (about 30 s at a
  million events), so the page runs it as a background verification run
  (audit/runs.py) and shows the kept result.
- `verify_recent()` trusts the chain up to the latest signed checkpoint that still
  matches and walks only what came after it; it also checks every signed checkpoint's
  pinned hash, and the events it walked against the latest checkpoint's count. It
  catches a rebuilt chain, a truncated tail and anything done to the events after the
  checkpoint (edited, deleted, inserted, reordered) at once. It reads nothing before the
  trusted checkpoint but the pinned events, so its cost does not grow with the log: the
  events up to it are taken as the checkpoint signed them (its count), and an edit or
  deletion of an older event that left the pinned hashes alone is found by the next
  full verification (and stops the next checkpoint from being signed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from releaseboard.audit import chain
from releaseboard.audit.checkpoint import CheckpointFile, read_files
from releaseboard.audit.models import AuditEvent, Checkpoint

MAX_PROBLEMS = 50
CHUNK = 5000


@dataclass(frozen=True)
class Problem:
    seq: int | None  # the first event it concerns; None for a problem with a checkpoint file
    text: str


@dataclass
class Report:
    events: int = 0
    head_seq: int = 0
    head_hash: str = chain.GENESIS
    checkpoints: list[CheckpointFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # The first seq whose hash was recomputed: 1 for a full verification, the event
    # after the trusted checkpoint for a quick one.
    from_seq: int = 1

    @property
    def full(self) -> bool:
        return self.from_seq <= 1

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    @property
    def latest_checkpoint(self) -> CheckpointFile | None:
        return self.checkpoints[-1] if self.checkpoints else None

    @property
    def summary(self) -> str:
        if self.ok:
            pinned = (
                f"; the latest signed checkpoint (seq {self.latest_checkpoint.seq}, "
                f"{self.latest_checkpoint.created_at}) matches"
                if self.latest_checkpoint
                else "; no signed checkpoint yet"
            )
            if not self.full:
                after = self.head_seq - self.from_seq + 1
                return (
                    f"The audit log is intact: {self.events} events, seq 1 to {self.head_seq} (quick check: "
                    f"up to seq {self.from_seq - 1} as a signed checkpoint pinned it, {after} event(s) after it "
                    f"recomputed; a full verification walks every event){pinned}."
                )
            return f"The audit log is intact: {self.events} events, seq 1 to {self.head_seq}{pinned}."
        where = f" First bad seq: {self.first_bad_seq}." if self.first_bad_seq is not None else ""
        return f"The audit log is NOT intact: {len(self.problems)} problem(s).{where}"

    def lines(self) -> list[str]:
        return [self.summary, *(f"- {p.text}" for p in self.problems)]

    def add(self, seq: int | None, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(seq, text))


def verify(up_to_seq: int | None = None, progress: Callable[[int, int], None] | None = None) -> Report:
    """Verify the whole log (or its events up to `up_to_seq`) against itself and
    against every signed checkpoint file. Reads the events in seq order, a chunk at a
    time, so memory stays flat on a large log. `progress(seq, events)` is called after
    each chunk."""
    report = Report()
    checkpoints, bad_files = read_files()
    report.checkpoints = checkpoints
    hash_at = _walk(report, {c.seq for c in checkpoints}, 1, chain.GENESIS, 0, up_to_seq, progress)
    _check_against(report, checkpoints, hash_at, up_to_seq)
    _finish(report, bad_files)
    return report


def verify_recent(up_to_seq: int | None = None) -> Report:
    """Verify from the latest signed checkpoint whose pinned hash still matches: every
    checkpoint's pinned event, then the chain after it, then the count of the latest
    checkpoint. Costs a few indexed reads plus the events since that checkpoint,
    whatever the size of the log: no query reads the events before it (no COUNT of
    them either; the checkpoint's signed count stands for them)."""
    checkpoints, bad_files = read_files()
    usable = [c for c in checkpoints if c.seq > 0 and (up_to_seq is None or c.seq <= up_to_seq)]
    if not usable:
        return verify(up_to_seq)
    report = Report(checkpoints=checkpoints)
    pinned = {c.seq for c in usable}
    rows = dict(AuditEvent.objects.filter(seq__in=pinned).values_list("seq", "hash"))
    hash_at = {seq: rows[seq] for seq in pinned if seq in rows}
    trusted = None
    for checkpoint in sorted(usable, key=lambda c: c.seq):
        if hash_at.get(checkpoint.seq) == checkpoint.head_hash:
            trusted = checkpoint
    if trusted is None:
        # Nothing signed still matches: only a walk from the start can say what is left.
        return verify(up_to_seq)
    report.from_seq = trusted.seq + 1
    previous = AuditEvent.objects.filter(seq=trusted.seq).values_list("id", flat=True).first() or 0
    # The events up to the trusted checkpoint as it signed them; those walked are added.
    report.events = trusted.count
    _walk(report, set(), trusted.seq + 1, trusted.head_hash, previous, up_to_seq, None)
    _check_against(report, checkpoints, hash_at, up_to_seq)
    _finish(report, bad_files)
    return report


def _walk(
    report: Report,
    pinned: set[int],
    start_seq: int,
    start_hash: str,
    start_id: int,
    up_to_seq: int | None,
    progress: Callable[[int, int], None] | None,
) -> dict[int, str]:
    """Recompute the chain from `start_seq` (whose predecessor has `start_hash`) and add
    a problem for each broken link; return the hashes found at the pinned seqs."""
    hash_at: dict[int, str] = {}
    events = AuditEvent.objects.filter(seq__gte=start_seq).order_by("seq")
    if up_to_seq is not None:
        events = events.filter(seq__lte=up_to_seq)
    columns = [*chain.CONTENT_FIELDS, "id", "prev_hash", "hash"]
    expected, prev_hash, prev_id = start_seq, start_hash, start_id
    for row in events.values(*columns).iterator(chunk_size=CHUNK):
        seq = row["seq"]
        report.events += 1
        if seq != expected:
            missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected} to {seq - 1}"
            report.add(expected, f"seq {expected}: {missing} missing (deleted); the next event is seq {seq}.")
        elif row["prev_hash"] != prev_hash:
            report.add(
                seq,
                f"seq {seq}: its prev_hash is not the hash of seq {seq - 1} "
                "(events were reordered, removed or inserted before it).",
            )
        if row["id"] <= prev_id:
            report.add(
                seq, f"seq {seq}: stored out of order (id {row['id']} after id {prev_id}); events were reordered."
            )
        if chain.event_hash(row, row["prev_hash"]) != row["hash"]:
            report.add(seq, f"seq {seq}: its content does not match its hash (the event was edited).")
        if seq in pinned:
            hash_at[seq] = row["hash"]
        expected, prev_hash, prev_id = seq + 1, row["hash"], row["id"]
        if progress is not None and report.events % CHUNK == 0:
            progress(seq, report.events)
    report.head_seq, report.head_hash = expected - 1, prev_hash
    return hash_at


def _finish(report: Report, bad_files: list[str]) -> None:
    for text in bad_files:
        report.add(None, text)
    _check_files_listed_in_db(report)
    report.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))


def _check_against(
    report: Report, checkpoints: list[CheckpointFile], hash_at: dict[int, str], up_to_seq: int | None
) -> None:
    last_match = 0
    for checkpoint in checkpoints:
        if checkpoint.seq == 0 or (up_to_seq is not None and checkpoint.seq > up_to_seq):
            continue
        found = hash_at.get(checkpoint.seq)
        if found == checkpoint.head_hash:
            last_match = checkpoint.seq
        elif found is not None:
            report.add(
                checkpoint.seq,
                f"seq {checkpoint.seq}: its hash is not the one signed in checkpoint {checkpoint.name}; "
                f"the chain was rewritten at or before seq {checkpoint.seq} "
                f"(after seq {last_match}, the last checkpoint that still matches).",
            )
    latest = max(
        (c for c in checkpoints if up_to_seq is None or c.seq <= up_to_seq),
        key=lambda c: (c.count, c.seq),
        default=None,
    )
    if latest is not None and (report.events < latest.count or report.head_seq < latest.seq):
        report.add(
            report.head_seq + 1,
            f"seq {report.head_seq + 1}: the log ends at seq {report.head_seq} with {report.events} events, "
            f"but checkpoint {latest.name} signed {latest.count} events up to seq {latest.seq}; "
            "the tail was truncated.",
        )


def _check_files_listed_in_db(report: Report) -> None:
    """A checkpoint the database lists but whose file is gone: someone removed a file
    (the rows themselves prove nothing, but a missing file is worth a look)."""
    on_disk = {c.name for c in report.checkpoints}
    missing = [name for name in Checkpoint.objects.values_list("file_name", flat=True) if name not in on_disk]
    if missing:
        report.add(
            None,
            f"{len(missing)} checkpoint file(s) listed in the database are missing or not trusted: "
            f"{', '.join(sorted(missing)[:5])}.",
        )
