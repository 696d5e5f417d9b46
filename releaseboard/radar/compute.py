"""Refresh a repository's conflict radar after a sync: merge the pairs whose heads moved.

Runs in the worker, after record_heads() (it needs the mirror). The web only reads the
cached PairMerge rows (selectors.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from django.db import connection, transaction
from django.db.models import Field, Q, QuerySet
from django.utils import timezone

from releaseboard import branching, vcs
from releaseboard.background import AHEAD_NICE, Background
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


def _open(repository: Repository) -> QuerySet[Branch]:
    return Branch.objects.filter(repository=repository, state=BranchState.ACTIVE, kind__in=OPEN_KINDS).exclude(
        head_sha=""
    )


def open_branches(repository: Repository) -> list[Branch]:
    """The feature and hotfix branches still in flight, by name."""
    return list(_open(repository).order_by("name"))


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


def refresh_radar(repository: Repository, mirror: vcs.Mirror) -> RadarRefresh:
    """Merge the pairs missing from the cache in one git process; drop pairs no longer shown."""
    return start_refresh(repository, mirror).finish()


class PendingRefresh:
    """A radar refresh whose merges run in a thread of their own while the job goes on.

    Only git runs in that thread (a merge-tree process and the parse of its output): the
    database is read before it starts and written by finish(), in the caller's thread and
    connection. finish() must be called, also when the caller failed meanwhile. Pairs a
    RadarAhead was merging already (started before the job pushed staging) are taken from
    it, and merged here only if it failed.
    """

    def __init__(
        self,
        repository: Repository,
        mirror: vcs.Mirror,
        heads: str,
        known: dict[tuple[str, str], int],
        missing: list[tuple[str, str]],
        ahead: tuple[RadarAhead, list[tuple[str, str]]] | None = None,
    ) -> None:
        self.repository, self.mirror, self.heads = repository, mirror, heads
        self.distinct = set(heads.split())
        self.known, self.missing, self.ahead = known, missing, ahead
        self._merges = Background(lambda: _merge(mirror, missing), "radar-merges") if missing else None

    def finish(self) -> RadarRefresh:
        merged = list(zip(self.missing, self._merges.result() if self._merges else [], strict=True))
        if self.ahead is not None:
            ahead, pairs = self.ahead
            done = ahead.results()
            lacking = [pair for pair in pairs if pair not in done]  # it failed: merge them now
            merged += [(pair, done[pair]) for pair in pairs if pair in done]
            merged += list(zip(lacking, _merge(self.mirror, lacking), strict=True))
        # A stored pair is shown while both its heads are (its key is sorted, never of one head).
        stale = [pk for (low, high), pk in self.known.items() if low not in self.distinct or high not in self.distinct]
        with transaction.atomic():
            _insert(
                self.repository,
                [
                    (low, high, [{"path": c.path, "kind": c.kind} for c in result.conflicts])
                    for (low, high), result in merged
                ],
            )
            if stale:
                PairMerge.objects.filter(pk__in=stale).delete()
            RadarCoverage.objects.bulk_create(  # one statement: INSERT ... ON CONFLICT DO UPDATE
                [RadarCoverage(repository_id=self.repository.pk, heads=self.heads)],
                update_conflicts=True,
                unique_fields=["repository"],
                update_fields=["heads"],
            )
        wanted, computed = _pair_count(self.distinct), len(merged)
        return RadarRefresh(pairs=wanted, computed=computed, cached=wanted - computed)


def _merge(mirror: vcs.Mirror, pairs: list[tuple[str, str]]) -> list[vcs.MergeResult]:
    scratch = os.environ.get(SCRATCH_ENV)
    # Not observed: the job's log is written by its own thread only (the radar's line says what ran).
    return vcs.merge_pairs(mirror, pairs, scratch_root=Path(scratch) if scratch else None, observed=False)


class RadarAhead:
    """The merges of the staging head a job is about to push with each open branch,
    started before the push (in a thread, git only), so that they run while it pushes.
    The refresh after the move takes those it needs (start_refresh's `ahead`)."""

    def __init__(self, mirror: vcs.Mirror, pairs: list[tuple[str, str]]) -> None:
        self.pairs = set(pairs)
        self._merges = Background(lambda: _merge(mirror, pairs), "radar-ahead", nice=AHEAD_NICE)
        self._order = pairs

    def results(self) -> dict[tuple[str, str], vcs.MergeResult]:
        """Its merges by pair, once done; none if it failed (the refresh merges them itself)."""
        try:
            return dict(zip(self._order, self._merges.result(), strict=True))
        except Exception as exc:
            log.warning("conflict radar: the merges started before the push failed: %s", exc)
            return {}

    def wait(self) -> None:
        self._merges.wait()


def radar_ahead(
    repository: Repository, mirror: vcs.Mirror, heads: dict[str, str], settled: dict[int, str]
) -> RadarAhead | None:
    """Start merging the staging head in `heads` (about to be pushed) with every branch
    open once the job has settled the states in `settled` (hooks.staging_moving)."""
    staging = heads.get(repository.staging_branch)
    if not staging:
        return None
    rows = _open(repository).values_list("pk", "head_sha")
    open_heads = {head for pk, head in rows if settled.get(pk, BranchState.ACTIVE) == BranchState.ACTIVE}
    pairs = sorted({pair_key(head, staging) for head in open_heads if head != staging})
    return RadarAhead(mirror, pairs) if pairs else None


class _Done:
    def __init__(self, done: RadarRefresh) -> None:
        self.done = done

    def finish(self) -> RadarRefresh:
        return self.done


# Past this many heads changed since the covered ones, all pairs are read instead.
INCREMENTAL_LIMIT = 50


def start_refresh(
    repository: Repository, mirror: vcs.Mirror, ahead: RadarAhead | None = None
) -> PendingRefresh | _Done:
    """Read what the radar shows and what its cache holds; start merging the missing pairs.

    When the heads are those the cache was last brought up to date for, and it still holds
    as many pairs as they make, nothing more is read: no pair rows (some 5,000 at a hundred
    open branches), no git. When a few heads changed since (a branch moved, staging moved)
    and the cache still holds as many pairs as the covered heads make, only the pairs with
    a changed head are read: the others are the covered heads' pairs, and only the new
    heads' pairs are listed (never all n² of them). Else every pair is. Jobs of one
    repository refresh in turn (they hold its lease). Missing pairs that `ahead` is
    merging already are taken from it.
    """
    heads = wanted_heads(repository)
    distinct = set(heads)
    joined = " ".join(sorted(distinct))
    coverage = RadarCoverage.objects.filter(repository_id=repository.pk).values_list("heads", flat=True).first()
    stored = PairMerge.objects.filter(repository=repository).count() if coverage is not None else -1
    if coverage == joined and stored == _pair_count(distinct):
        return _Done(RadarRefresh(pairs=stored, computed=0, cached=stored))
    covered = set(coverage.split()) if coverage else set()
    changed = covered ^ distinct
    if covered and stored == _pair_count(covered) and len(changed) <= INCREMENTAL_LIMIT:
        known = _known_pairs(repository, touching=changed)
        new = {pair_key(head, other) for head in changed & distinct for other in distinct if other != head}
        missing = sorted(new - known.keys())
    else:
        known = _known_pairs(repository)
        missing = sorted(pairs_of(heads) - known.keys())
    if ahead is None:
        return PendingRefresh(repository, mirror, joined, known, missing)
    taken = [pair for pair in missing if pair in ahead.pairs]
    rest = [pair for pair in missing if pair not in ahead.pairs]
    return PendingRefresh(repository, mirror, joined, known, rest, (ahead, taken))


def _pair_count(distinct: set[str]) -> int:
    return len(distinct) * (len(distinct) - 1) // 2  # each two different heads: len(pairs_of(heads))


def _known_pairs(repository: Repository, touching: set[str] | None = None) -> dict[tuple[str, str], int]:
    """{(low, high): pk} of the repository's cached pairs (only those with a head in
    `touching`, if given): one plain cursor read, since with a hundred open branches there
    are some 5,000 rows and a QuerySet's per-row work cost more than the query."""
    quote = connection.ops.quote_name
    meta = PairMerge._meta

    def column(name: str) -> str:
        return quote(str(cast(Field, meta.get_field(name)).column))

    columns = ", ".join(column(f) for f in ("low_sha", "high_sha", "id"))
    sql = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {column('repository')} = %s"
    params: list[int | str] = [repository.pk]
    if touching is not None:
        if not touching:
            return {}
        marks = ", ".join(["%s"] * len(touching))
        sql += f" AND ({column('low_sha')} IN ({marks}) OR {column('high_sha')} IN ({marks}))"
        params += sorted(touching) * 2
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
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


def refresh_radar_or_log(
    repository: Repository, mirror: vcs.Mirror, say: Callable[[str], None], ahead: Sequence[object] = ()
) -> Callable[[], None]:
    """refresh_radar for a job that recorded new heads: starts the merges and returns the
    function that waits for them and stores the result; the job calls it once it has done
    its own work meanwhile (branch facts). `ahead`: what hooks.staging_moving's observers
    started before the job pushed staging (this module's RadarAhead among them). The radar
    is advice, so a failure is logged and never fails the job."""

    def failed(exc: BaseException) -> None:
        log.error("conflict radar refresh failed for %s", repository.name, exc_info=exc)
        say(f"conflict radar: not refreshed ({exc}); the board shows the previous results.\n")

    try:
        mine = next((a for a in ahead if isinstance(a, RadarAhead)), None)
        pending = start_refresh(repository, mirror, mine)
    except Exception as exc:  # any failure here must leave the job's result alone
        failed(exc)
        return lambda: None

    def finish() -> None:
        try:
            done = pending.finish()
        except Exception as exc:
            failed(exc)
            return
        say(f"conflict radar: {done.pairs} pairs, {done.computed} merged now, {done.cached} from the cache\n")

    return finish
