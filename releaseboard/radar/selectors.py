"""What the pages show of the conflict radar, read from the cache. No git here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

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

    @property
    def ids(self) -> str:
        """ "<branch id>/<other id>": the board renders 1,275 cell links, and a string is
        cheaper there than two localized numbers."""
        return f"{self.branch.pk}/{self.other.pk}"


@dataclass
class Row:
    number: int
    branch: Branch
    staging: Cell | None
    cells: list[Cell]  # against the branches listed before this one (the matrix is symmetric)
    conflicting: int = 0

    @property
    def shown(self) -> list[Cell]:
        """The cells in the board's column order: staging first."""
        return ([self.staging] if self.staging else []) + self.cells


@dataclass
class Matrix:
    staging: Branch | None
    branches: list[Branch]
    rows: list[Row]
    conflicting_pairs: int
    pending_pairs: int


def _cell(merges: dict[tuple[str, str], PairMerge], branch: Branch, other: Branch) -> Cell:
    if branch.head_sha == other.head_sha:
        return Cell(branch, other, CLEAN)
    merge = merges.get(pair_key(branch.head_sha, other.head_sha))
    if merge is None:
        return Cell(branch, other, PENDING)
    return Cell(branch, other, CONFLICT if merge.conflicts else CLEAN, list(merge.conflicts))


def _merges(repository: Repository, shas: list[str]) -> dict[tuple[str, str], PairMerge]:
    rows = PairMerge.objects.filter(repository=repository, low_sha__in=shas, high_sha__in=shas)
    return {(m.low_sha, m.high_sha): m for m in rows}


def _merges_with(repository: Repository, sha: str, others: list[str]) -> dict[tuple[str, str], PairMerge]:
    """The cached merges of one head with each of `others`: n rows, not the n² of the map."""
    rows = PairMerge.objects.filter(repository=repository).filter(
        Q(low_sha=sha, high_sha__in=others) | Q(high_sha=sha, low_sha__in=others)
    )
    return {(m.low_sha, m.high_sha): m for m in rows}


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
    merges = _merges(repository, [b.head_sha for b in branches] + ([staging.head_sha] if staging else []))
    rows = []
    for number, branch in enumerate(branches, start=1):
        cells = [_cell(merges, branch, other) for other in branches[: number - 1]]
        rows.append(Row(number, branch, _cell(merges, branch, staging) if staging else None, cells))
    counts: Counter[int] = Counter()
    for row in rows:
        for cell in row.cells:
            if cell.state == CONFLICT:
                counts[row.branch.pk] += 1
                counts[cell.other.pk] += 1
    for row in rows:
        row.conflicting = counts[row.branch.pk]
    every = [c for row in rows for c in row.cells]
    return Matrix(
        staging,
        branches,
        rows,
        conflicting_pairs=sum(c.state == CONFLICT for c in every),
        pending_pairs=sum(c.state == PENDING for c in every + [r.staging for r in rows if r.staging]),
    )


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
