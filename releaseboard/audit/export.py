"""The audit log as CSV or JSON Lines, one event at a time (for streaming responses).

Both carry seq, prev_hash and hash, so an export of the whole log can be re-verified
off the host. JSON Lines is the exact record. CSV is for spreadsheets: a cell that a
spreadsheet would run as a formula (starting with = + - @ or a control character) is
prefixed with a quote, so an event message cannot execute on an Ops workstation.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from releaseboard.audit import chain
from releaseboard.audit.models import AuditEvent

COLUMNS = [
    "seq",
    "created_at",
    "actor_name",
    "actor_id",
    "action",
    "repository_id",
    "repository_name",
    "object_type",
    "object_id",
    "object_repr",
    "from_sha",
    "to_sha",
    "result",
    "message",
    "details",
    "prev_hash",
    "hash",
]
CHUNK = 2000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _rows(events: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    for row in events.order_by("seq").values(*COLUMNS).iterator(chunk_size=CHUNK):
        row["created_at"] = chain.timestamp(row["created_at"])
        yield row


def jsonl_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    for row in _rows(events):
        yield json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n"


class _Line:
    """A file-like object whose write() hands back the line csv.writer wrote."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_lines(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    for row in _rows(events):
        yield writer.writerow([_cell(row[c]) for c in COLUMNS])
