"""Reachability arithmetic for the branch facts, on parent maps read in two git processes
(vcs.history.parent_map) however many branches are open.

The unmerged side is the subgraph of commits some open branch has and staging lacks; a
branch's unmerged commits are what it reaches in it, and where its walk leaves the
subgraph (its boundary) are commits staging has. The staging side is staging's commits
after a common ancestor of all the boundaries (what every branch has), in topological
order: the commits a branch shares with staging are those its boundary reaches, found
with one bitmask per staging commit (its ancestors there), so each branch costs a few
ORs and a popcount instead of a walk or a git process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class HeadReach:
    """What a head reaches: its commits staging lacks, and where that history meets
    staging's (the commits staging has that are parents of them, or the head itself)."""

    unmerged: frozenset[str]
    boundary: frozenset[str]


def head_reach(unmerged_map: Mapping[str, tuple[str, ...]], head: str) -> HeadReach:
    """The head's reach in the unmerged subgraph (`unmerged_map`: commit -> parents)."""
    if head not in unmerged_map:
        return HeadReach(frozenset(), frozenset([head]))
    seen = {head}
    boundary = set()
    todo = [head]
    while todo:
        for parent in unmerged_map[todo.pop()]:
            if parent in unmerged_map:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
            else:
                boundary.add(parent)
    return HeadReach(frozenset(seen), frozenset(boundary))


class StagingWindow:
    """Staging's commits after `base` (a common ancestor of every open branch's boundary,
    so every branch has what `base` has), children first and closed under descendants,
    with each one's ancestors within the window as a bitmask.

    Complete (git listed all of them): a parent outside the window is an ancestor of
    `base`, which every branch has, so it adds nothing. Cut at the limit: bits 0..n-1 are
    the window's commits and the bits above are its frontier, the parents just outside,
    which stand for all the older history (everything older is an ancestor of one of
    them); a branch whose history does not reach every frontier commit cannot be counted
    from the window.
    """

    def __init__(self, window: Mapping[str, tuple[str, ...]], *, complete: bool) -> None:
        order = list(window)
        self.size = len(order)
        self.complete = complete
        self.bit = {sha: i for i, sha in enumerate(order)}
        if not complete:
            for sha in order:
                for parent in window[sha]:
                    if parent not in self.bit:
                        self.bit[parent] = len(self.bit)
        self.frontier = ((1 << len(self.bit)) - 1) ^ ((1 << self.size) - 1)
        self._window_bits = (1 << self.size) - 1
        self.ancestors: dict[str, int] = {}
        for sha in reversed(order):  # parents before children
            mask = 1 << self.bit[sha]
            for parent in window[sha]:
                found = self.ancestors.get(parent)
                mask |= found if found is not None else 0 if complete else 1 << self.bit[parent]
            self.ancestors[sha] = mask

    def reach(self, boundary: Iterable[str]) -> int | None:
        """The bitmask of what `boundary` (commits staging has) reaches, or None when a
        commit of it lies past a cut window."""
        mask = 0
        for sha in boundary:
            found = self.ancestors.get(sha)
            if found is None and not self.complete:
                return None
            mask |= found or 0  # complete: outside the window means `base` or older
        return mask

    def behind(self, mask: int) -> int | None:
        """Staging's commits not in `mask` (nor in `base`'s history), or None when that needs
        history past a cut window (the mask does not reach every frontier commit)."""
        if mask & self.frontier != self.frontier:
            return None
        return self.size - (mask & self._window_bits).bit_count()

    def has(self, mask: int, sha: str) -> bool | None:
        """Whether `mask` reaches `sha`; None when the window cannot tell."""
        bit = self.bit.get(sha)
        if bit is None or (bit >= self.size and not mask >> bit & 1):
            return None  # outside the window, or a frontier commit the mask does not stand on
        return bool(mask >> bit & 1)
