"""The hash chain over audit events: what is hashed, and how.

Each event's hash is SHA-256 over a canonical serialization of its content (sorted-key
JSON, no whitespace, UTF-8) that includes its `seq` and the hash of the event before
it. Changing, removing or reordering an event therefore changes every hash after it;
signed checkpoints (checkpoint.py) pin the head so that recomputing the whole chain
is caught too.

Pure functions only: the migration that backfills old events uses them as well.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

# The prev_hash of seq 1.
GENESIS = "0" * 64
# Bumped if the serialization ever changes; it is part of the hashed content.
FORMAT_VERSION = 1

CONTENT_FIELDS = (
    "seq",
    "created_at",
    "actor_id",
    "actor_name",
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
)


def timestamp(value: dt.datetime) -> str:
    """created_at as it is hashed: ISO 8601 in UTC with microseconds, so the same
    instant read back from SQLite or PostgreSQL gives the same text."""
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def normalize_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """The details as the database will give them back (a JSON round trip): what is
    hashed at write time must equal what is read at verification time."""
    result: dict[str, Any] = json.loads(json.dumps(details or {}))
    return result


def canonical(content: dict[str, Any], prev_hash: str) -> bytes:
    document = {name: content[name] for name in CONTENT_FIELDS}
    document["created_at"] = timestamp(content["created_at"])
    document["prev_hash"] = prev_hash
    document["v"] = FORMAT_VERSION
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(content: dict[str, Any] | object, prev_hash: str) -> str:
    """The hash of one event, given its content fields (a dict or an object with those
    attributes) and the hash of the event before it."""
    if not isinstance(content, dict):
        content = {name: getattr(content, name) for name in CONTENT_FIELDS}
    return hashlib.sha256(canonical(content, prev_hash)).hexdigest()
