"""Reachability arithmetic for the branch facts, on parent maps read in two git processes
(vcs.history.parent_map) however many branches are open.

The unmerged side is the subgraph of commits some open branch has and staging lacks; a
branch's unmerged commits are what it reaches in it, and where its walk leaves the
subgraph (its boundary) are commits staging has. The staging side is a window of
staging's newest commits in topological order, closed under descendants: the ancestors
a branch shares with staging are those of its boundary, found with one bitmask per
window commit (its ancestors within the window), so each branch costs a few ORs and a
popcount instead of a walk or a git process.
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
    """Staging's newest commits (commit -> parents, children first, descendant-closed) with
    each one's ancestors as a bitmask. Bits 0..n-1 are the window's commits; the bits
    above are the frontier: parents just outside the window, which stand for all of the
    older history (everything older is an ancestor of some frontier commit)."""

    def __init__(self, window: Mapping[str, tuple[str, ...]]) -> None:
        order = list(window)
        self.size = len(order)
        self.bit = {sha: i for i, sha in enumerate(order)}
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
                mask |= self.ancestors.get(parent, 1 << self.bit[parent])
            self.ancestors[sha] = mask

    def reach(self, boundary: Iterable[str]) -> int | None:
        """The bitmask of what `boundary` reaches, or None if a commit of it is not in the window."""
        mask = 0
        for sha in boundary:
            found = self.ancestors.get(sha)
            if found is None:
                return None
            mask |= found
        return mask

    def behind(self, mask: int) -> int | None:
        """Staging's commits not in `mask`, or None when that needs history past the window
        (the mask does not reach every frontier commit, so some older commits may be missing)."""
        if mask & self.frontier != self.frontier:
            return None
        return self.size - (mask & self._window_bits).bit_count()

    def has(self, mask: int, sha: str) -> bool | None:
        """Whether `mask` reaches `sha`; None when the window cannot tell."""
        bit = self.bit.get(sha)
        if bit is None or (bit >= self.size and not mask >> bit & 1):
            return None  # outside the window, or a frontier commit the mask does not stand on
        return bool(mask >> bit & 1)
