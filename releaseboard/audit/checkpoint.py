"""Signed checkpoints of the audit chain: {count, seq, head hash, created_at}.

The chain alone shows an edit, but not an attacker who rewrites every hash after the
edit, or who cuts off the tail: both leave a chain that checks out. A checkpoint pins
the head as it was: it is signed with HMAC-SHA256 under a key kept in a file outside
the database (AUDIT_KEY_FILE), and written as a file of its own in
AUDIT_CHECKPOINT_DIR, never overwritten, which Ops can copy off the host. A Checkpoint
row lists it in the database, but verification reads only the signed files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from releaseboard.audit import chain
from releaseboard.audit.models import AuditEvent, Checkpoint
from releaseboard.audit.service import lock_chain

KIND = "releaseboard-audit-checkpoint"
FILE_GLOB = "checkpoint-*.json"


class CheckpointRefused(RuntimeError):
    """The chain does not verify, so it must not be signed as it is."""


@dataclass(frozen=True)
class CheckpointFile:
    name: str
    seq: int
    count: int
    head_hash: str
    created_at: str

    @property
    def created(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.created_at)


def _write_new_file(path: Path, text: str, mode: int) -> None:
    """Write `path` whole and at once, and only if it does not exist yet: the text goes
    to a temporary file first, which is then hard-linked under its name (link fails if
    the name is taken, so nothing is ever overwritten or seen half-written)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.link(tmp, path)
    finally:
        os.unlink(tmp)


def signing_key(create: bool = True) -> bytes | None:
    """The HMAC key from AUDIT_KEY_FILE, made with `secrets` (mode 0600) the first time
    a checkpoint is written. Verification passes create=False: no key, nothing to check."""
    path = Path(settings.AUDIT_KEY_FILE)
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        # Another process may make it first: then use theirs.
        with contextlib.suppress(FileExistsError):
            _write_new_file(path, secrets.token_hex(32) + "\n", 0o600)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ImproperlyConfigured(f"The audit key in {path} is too short; it must hold at least 32 characters.")
    return key.encode()


def _signed_part(document: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def sign(document: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, _signed_part(document), hashlib.sha256).hexdigest()


def read_files() -> tuple[list[CheckpointFile], list[str]]:
    """Every checkpoint file whose signature checks out, oldest seq first, and a line
    for each file that is damaged or signed with another key (those are not trusted)."""
    directory = Path(settings.AUDIT_CHECKPOINT_DIR)
    paths = sorted(directory.glob(FILE_GLOB)) if directory.is_dir() else []
    if not paths:
        return [], []
    key = signing_key(create=False)
    if key is None:
        return [], [
            f"{len(paths)} checkpoint file(s) in {directory} cannot be checked: the key file "
            f"{settings.AUDIT_KEY_FILE} is missing."
        ]
    good: list[CheckpointFile] = []
    bad: list[str] = []
    for path in paths:
        try:
            document = json.loads(path.read_text())
            valid = document.get("kind") == KIND and hmac.compare_digest(
                str(document.get("signature", "")), sign(document, key)
            )
            if valid:
                good.append(
                    CheckpointFile(
                        path.name,
                        int(document["seq"]),
                        int(document["count"]),
                        str(document["head_hash"]),
                        str(document["created_at"]),
                    )
                )
        except (OSError, ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            bad.append(f"checkpoint file {path.name}: its signature does not match (forged or damaged); not trusted.")
    good.sort(key=lambda c: (c.seq, c.created_at))
    return good, bad


def write(created_by: str) -> Checkpoint:
    """Sign the chain's head as it is now: verify it first (a broken chain is refused,
    not signed), count the events up to the head (a log with a gap is refused too), then
    write the file, then the row."""
    from releaseboard.audit.verify import verify_recent

    with transaction.atomic():
        # Under the append lock, so the head is the last committed event.
        lock_chain()
        head = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, head_hash = head if head else (0, chain.GENESIS)
    # From the previous signed checkpoint on: what came before it was verified when that
    # one was signed, and later tampering with it is the full verification's to find.
    report = verify_recent(up_to_seq=seq)
    if not report.ok:
        raise CheckpointRefused(f"The audit log does not verify, so no checkpoint was signed. {report.summary}")
    # Events at or before the head no longer change once committed, so they are counted
    # after the lock is released (appends go on meanwhile). seq counts events from 1
    # without gaps: fewer rows than seq means events before the previous checkpoint were
    # deleted, which the check above does not read. The quick check relies on this: a
    # signed count is the true count of events up to its seq.
    count = AuditEvent.objects.filter(seq__gte=1, seq__lte=seq).count()
    if count != seq:
        raise CheckpointRefused(
            f"The audit log does not verify, so no checkpoint was signed: {seq - count} event(s) at or "
            f"before seq {seq} are missing ({count} events remain, seq 1 to {seq}); events were deleted. "
            "Run a full verification to find them."
        )
    created_at = timezone.now().astimezone(dt.UTC)
    document: dict[str, Any] = {
        "kind": KIND,
        "version": 1,
        "count": count,
        "seq": seq,
        "head_hash": head_hash,
        "created_at": created_at.isoformat(timespec="microseconds"),
    }
    document["signature"] = sign(document, signing_key())  # type: ignore[arg-type]
    directory = Path(settings.AUDIT_CHECKPOINT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"checkpoint-{seq:012d}-{created_at:%Y%m%dT%H%M%S%fZ}.json"
    _write_new_file(directory / name, json.dumps(document, indent=2, sort_keys=True) + "\n", 0o644)
    return Checkpoint.objects.create(
        created_at=created_at,
        seq=seq,
        count=count,
        head_hash=head_hash,
        file_name=name,
        signature=document["signature"],
        created_by=created_by,
    )


def write_if_changed(created_by: str) -> Checkpoint | None:
    """The periodic checkpoint: skip it when nothing was appended since the last signed one."""
    files, _ = read_files()
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    if files and files[-1].seq == head:
        return None
    return write(created_by)
