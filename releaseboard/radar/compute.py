"""Refresh a repository's conflict radar after a sync: merge the pairs whose heads moved.

Runs in the worker, after record_heads() (it needs the mirror). The web only reads the
cached PairMerge rows (selectors.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from django.db import connection, transaction
from django.db.models import Field, Q
from django.utils import timezone

from releaseboard import branching, vcs
from releaseboard.radar.models import PairMerge, RadarCoverage, pair_key
from releaseboard.releases.models import Branch, BranchState, Repository

log = logging.getLogger(__name__)
# Where merge-tree's throw-away objects go; default: tmpfs, else next to the mirror (vcs.radar).
SCRATCH_ENV = "RELEASEBOARD_RADAR_SCRATCH_DIR"
OPEN_KINDS = (branching.BranchKind.FEATURE.value, branching.BranchKind.HOTFIX.value)


@dataclass(frozen=True)
class RadarRefresh:
    pairs: int  # pairs the radar shows
    computed: int  # merged now (their heads were new)
    cached: int  # already known


def open_branches(repository: Repository) -> list[Branch]:
    """The feature and hotfix branches still in flight, by name."""
    return list(
        Branch.objects.filter(repository=repository, state=BranchState.ACTIVE, kind__in=OPEN_KINDS)
        .exclude(head_sha="")
        .order_by("name")
    )


def wanted_heads(repository: Repository) -> list[str]:
    """The heads the radar pairs up: each open branch's (by name), then staging's."""
    # One query for the open branches (by name, as open_branches lists them) and staging.
    rows = (
        Branch.objects.filter(repository=repository, state=BranchState.ACTIVE)
        .filter(Q(kind__in=OPEN_KINDS) | Q(name=repository.staging_branch))
        .exclude(head_sha="")
        .order_by("name")
        .values_list("name", "kind", "head_sha")
    )
    heads, staging = [], None
    for name, kind, head in rows:
        if name == repository.staging_branch:
            staging = head
        if kind in OPEN_KINDS:
            heads.append(head)
    if staging:
        heads.append(staging)
    return heads


def pairs_of(heads: list[str]) -> set[tuple[str, str]]:
    """Cache keys of every pair the radar shows: each two open branches, each one and staging."""
    # Two branches at the same commit (a new branch at staging) merge cleanly: nothing to ask git.
    return {pair_key(a, b) for i, a in enumerate(heads) for b in heads[i + 1 :] if a != b}


def wanted_pairs(repository: Repository) -> set[tuple[str, str]]:
    return pairs_of(wanted_heads(repository))


def _coverage_key(heads: list[str]) -> str:
    return hashlib.sha256(" ".join(sorted(set(heads))).encode()).hexdigest()


def refresh_radar(repository: Repository, mirror: vcs.Mirror) -> RadarRefresh:
    """Merge the pairs missing from the cache in one git process; drop pairs no longer shown.

    When the heads are those the cache was last brought up to date for, and it still holds
    as many pairs as they make, nothing more is read: no pair rows (some 5,000 at a hundred
    open branches), no git. Jobs of one repository refresh in turn (they hold its lease).
    """
    heads = wanted_heads(repository)
    distinct = len(set(heads))
    count = distinct * (distinct - 1) // 2  # each two different heads: len(pairs_of(heads))
    key = _coverage_key(heads)
    covered = RadarCoverage.objects.filter(repository_id=repository.pk, heads_key=key).exists()
    if covered and PairMerge.objects.filter(repository=repository).count() == count:
        return RadarRefresh(pairs=count, computed=0, cached=count)
    wanted = pairs_of(heads)
    known = _known_pairs(repository)
    missing = sorted(wanted - known.keys())
    scratch = os.environ.get(SCRATCH_ENV)
    results = vcs.merge_pairs(mirror, missing, scratch_root=Path(scratch) if scratch else None)
    stale = [pk for key, pk in known.items() if key not in wanted]
    with transaction.atomic():
        _insert(
            repository,
            [
                (low, high, [{"path": c.path, "kind": c.kind} for c in result.conflicts])
                for (low, high), result in zip(missing, results, strict=True)
            ],
        )
        if stale:
            PairMerge.objects.filter(pk__in=stale).delete()
        RadarCoverage.objects.bulk_create(  # one statement: INSERT ... ON CONFLICT DO UPDATE
            [RadarCoverage(repository_id=repository.pk, heads_key=key)],
            update_conflicts=True,
            unique_fields=["repository"],
            update_fields=["heads_key"],
        )
    return RadarRefresh(pairs=len(wanted), computed=len(missing), cached=len(wanted) - len(missing))


def _known_pairs(repository: Repository) -> dict[tuple[str, str], int]:
    """{(low, high): pk} of the repository's cached pairs: one plain cursor read, since with
    a hundred open branches there are some 5,000 rows and a QuerySet's per-row work cost
    more than the query."""
    quote = connection.ops.quote_name
    meta = PairMerge._meta

    def column(name: str) -> str:
        return quote(str(cast(Field, meta.get_field(name)).column))

    columns = ", ".join(column(f) for f in ("low_sha", "high_sha", "id"))
    repository_column = column("repository")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {repository_column} = %s", [repository.pk])
        return {(low, high): pk for low, high, pk in cursor.fetchall()}


def _insert(repository: Repository, rows: list[tuple[str, str, list[dict[str, str]]]]) -> None:
    """Store merged pairs with one executemany; a pair another worker stored meanwhile is kept.

    bulk_create built a model instance per row and spent more time than the merges of
    an incremental refresh; ON CONFLICT DO NOTHING works on SQLite and PostgreSQL alike.
    """
    if not rows:
        return
    quote = connection.ops.quote_name
    field = PairMerge._meta.get_field("conflicts")
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    columns = ", ".join(quote(c) for c in ("repository_id", "low_sha", "high_sha", "conflicts", "computed_at"))
    sql = (
        f"INSERT INTO {quote(PairMerge._meta.db_table)} ({columns}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            sql,
            [
                (repository.pk, low, high, field.get_db_prep_save(conflicts, connection), now)
                for low, high, conflicts in rows
            ],
        )


def refresh_radar_or_log(repository: Repository, mirror: vcs.Mirror, say: Callable[[str], None]) -> None:
    """refresh_radar for a sync job: the radar is advice, so its failure never fails the sync."""
    try:
        done = refresh_radar(repository, mirror)
    except Exception as exc:  # any failure here must leave the sync's result alone
        log.exception("conflict radar refresh failed for %s", repository.name)
        say(f"conflict radar: not refreshed ({exc}); the board shows the previous results.\n")
        return
    say(f"conflict radar: {done.pairs} pairs, {done.computed} merged now, {done.cached} from the cache\n")
