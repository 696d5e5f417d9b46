"""What the pages show of the conflict radar, read from the cache. No git here."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from releaseboard.radar.compute import open_branches
from releaseboard.radar.models import PairMerge, pair_key
from releaseboard.releases.models import Branch, BranchState, Repository

CLEAN, CONFLICT, PENDING = "clean", "conflict", "pending"


@dataclass
class Cell:
    branch: Branch
    other: Branch
    state: str  # CLEAN, CONFLICT or PENDING (not merged yet: the next sync does it)
    conflicts: list[dict[str, Any]] = field(default_factory=list)


Merges = dict[tuple[str, str], list[dict[str, Any]]]  # {(low sha, high sha): conflicts}


@dataclass(eq=False)
class Row:
    number: int
    branch: Branch
    staging: Cell | None
    others: list[Branch]  # the branches listed before this one (the matrix is symmetric)
    merges: Merges
    missing: str  # the state of a pair not in `merges` (see _map_merges)
    conflicting: int = 0

    @cached_property
    def cells(self) -> list[Cell]:
        """Against each of `others`, made when asked for: the board reads the states
        straight from `merges` (states()), 5,050 of them at 100 open branches."""
        return [_cell(self.merges, self.branch, other, self.missing) for other in self.others]

    @property
    def shown(self) -> list[Cell]:
        """The cells in the board's column order: staging first."""
        return ([self.staging] if self.staging else []) + self.cells

    def states(self) -> Iterator[tuple[Branch, str, int]]:
        """(other, state, number of conflicted files) against each of `others`, in order."""
        sha, merges, missing = self.branch.head_sha, self.merges, self.missing
        for other in self.others:
            theirs = other.head_sha
            if theirs == sha:
                yield other, CLEAN, 0
                continue
            conflicts = merges.get((sha, theirs) if sha <= theirs else (theirs, sha))  # pair_key
            if conflicts is None:
                yield other, missing, 0
            else:
                yield other, CONFLICT if conflicts else CLEAN, len(conflicts)


@dataclass
class Matrix:
    staging: Branch | None
    branches: list[Branch]
    rows: list[Row]
    conflicting_pairs: int
    pending_pairs: int


def _cell(merges: Merges, branch: Branch, other: Branch, missing: str = PENDING) -> Cell:
    """`missing` is the state of a pair not in `merges`: not merged yet, or CLEAN when
    `merges` holds only the conflicting pairs of a fully merged map."""
    a, b = branch.head_sha, other.head_sha
    if a == b:
        return Cell(branch, other, CLEAN, [])
    conflicts = merges.get(pair_key(a, b))
    if conflicts is None:
        return Cell(branch, other, missing, [])
    return Cell(branch, other, CONFLICT if conflicts else CLEAN, conflicts)


def _conflicts_by_pair(rows: QuerySet[PairMerge]) -> Merges:
    """{(low sha, high sha): conflicts} from the cache, as plain values: the board reads
    5,050 pairs at 100 open branches, and a model instance for each cost more than the rest.
    The conflicts come as JSON text and only a non-empty list is decoded (most pairs are clean)."""
    return {
        (low, high): json.loads(text) if text != "[]" else []
        for low, high, text in rows.values_list("low_sha", "high_sha", Cast("conflicts", TextField()))
    }


def _merges(repository: Repository, shas: list[str]) -> Merges:
    return _conflicts_by_pair(PairMerge.objects.filter(repository=repository, low_sha__in=shas, high_sha__in=shas))


def _map_merges(repository: Repository, shas: list[str]) -> tuple[Merges, str]:
    """The merges the heat map needs, and the state of a pair that is not among them.

    Once a sync has merged every pair (the usual case), the cache holds all n(n-1)/2 of
    them and only the conflicting ones are read: a count and ~100 rows instead of 5,050 at
    100 open branches. Otherwise every cached pair is read, and a missing one is pending.
    Two queries either way."""
    cached = PairMerge.objects.filter(repository=repository, low_sha__in=shas, high_sha__in=shas)
    distinct = len(set(shas))
    if cached.count() == distinct * (distinct - 1) // 2:
        return _conflicts_by_pair(cached.exclude(conflicts=[])), CLEAN
    return _conflicts_by_pair(cached), PENDING


def _merges_with(repository: Repository, sha: str, others: list[str]) -> Merges:
    """The cached merges of one head with each of `others`: n rows, not the n² of the map."""
    return _conflicts_by_pair(
        PairMerge.objects.filter(repository=repository).filter(
            Q(low_sha=sha, high_sha__in=others) | Q(high_sha=sha, low_sha__in=others)
        )
    )


def _staging(repository: Repository) -> Branch | None:
    return (
        Branch.objects.filter(repository=repository, name=repository.staging_branch, state=BranchState.ACTIVE)
        .exclude(head_sha="")
        .first()
    )


def matrix(repository: Repository) -> Matrix:
    """The heat map: one row per open branch, against staging and every branch before it."""
    branches = open_branches(repository)
    staging = _staging(repository)
    merges, missing = _map_merges(repository, [b.head_sha for b in branches] + ([staging.head_sha] if staging else []))
    rows = []
    counts: Counter[int] = Counter()
    conflicting = pending = 0
    for number, branch in enumerate(branches, start=1):
        against_staging = _cell(merges, branch, staging, missing) if staging else None
        row = Row(number, branch, against_staging, branches[: number - 1], merges, missing)
        rows.append(row)
        for other, state, _ in row.states():
            if state == CONFLICT:
                conflicting += 1
                counts[branch.pk] += 1
                counts[other.pk] += 1
            elif state == PENDING:
                pending += 1
        if against_staging is not None and against_staging.state == PENDING:
            pending += 1
    for row in rows:
        row.conflicting = counts[row.branch.pk]
    return Matrix(staging, branches, rows, conflicting_pairs=conflicting, pending_pairs=pending)


def pair(repository: Repository, branch: Branch, other: Branch) -> Cell:
    """One cell: whether `branch` and `other` (a branch or staging) merge, and the conflicts."""
    return _cell(_merges(repository, [branch.head_sha, other.head_sha]), branch, other)


def landing_conflicts(branch: Branch) -> list[Cell]:
    """The open branches that conflict with `branch`: each will, once `branch` lands in staging."""
    others = [b for b in open_branches(branch.repository) if b.pk != branch.pk]
    if not branch.head_sha or not others:
        return []
    merges = _merges_with(branch.repository, branch.head_sha, [b.head_sha for b in others])
    return [cell for cell in (_cell(merges, branch, other) for other in others) if cell.state == CONFLICT]
