"""What the mirror's git operations return (identities, merge results, commits, ref
updates, refused pushes) and the parser of `git merge-tree` output."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from releaseboard.vcs.commands import GitError

_CONFLICT_KIND = re.compile(r"^CONFLICT \((?P<kind>[^)]*)\)")


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


@dataclass(frozen=True)
class Conflict:
    path: str
    kind: str  # "content", "modify/delete", "add/add", "rename/delete", ...


@dataclass(frozen=True)
class MergeResult:
    tree: str
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.conflicts

    @property
    def conflicted_paths(self) -> list[str]:
        return sorted({c.path for c in self.conflicts})


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    subject: str
    author_name: str
    author_email: str
    authored_at: int
    trailers: dict[str, list[str]]


@dataclass(frozen=True)
class RefUpdate:
    """Write `new` to `ref` only if the remote has `expected` there.

    expected is a SHA, or "" for "the ref must not exist yet". A tag update with
    expected=None is a plain push, which git refuses when the tag already exists.
    """

    ref: str
    new: str
    expected: str | None


class PushRejected(GitError):
    """The remote refused the push: the ref moved, already exists, or was not a fast-forward."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str, rejected: dict[str, str]) -> None:
        self.rejected = rejected
        details = "; ".join(f"{ref}: {why}" for ref, why in rejected.items()) or output.strip()[-300:]
        super().__init__(argv, returncode, output, f"push rejected ({details})")

    @property
    def stale(self) -> bool:
        return any("stale" in why or "fetch first" in why for why in self.rejected.values())

    @property
    def exists(self) -> bool:
        return any("already exists" in why for why in self.rejected.values())


def parse_merge_tree(output: str, clean: bool) -> MergeResult:
    """Parse `git merge-tree --write-tree -z --name-only --messages` output."""
    tree, _, rest = output.partition("\0")
    if clean:
        return MergeResult(tree=tree.strip())
    files_part, _, messages = rest.partition("\0\0")
    conflicted = [p for p in files_part.split("\0") if p]
    conflicts: list[Conflict] = []
    fields = messages.split("\0")
    i = 0
    while i < len(fields):
        if not fields[i].isdigit():
            i += 1
            continue
        count = int(fields[i])
        paths = fields[i + 1 : i + 1 + count]
        kind_field = fields[i + 1 + count] if i + 1 + count < len(fields) else ""
        message = fields[i + 2 + count] if i + 2 + count < len(fields) else ""
        i += count + 3
        # The stable type reads "CONFLICT (contents)" for add/add too; only the message
        # (in English: git runs with LANG=C) says "CONFLICT (add/add)".
        conflict = _CONFLICT_KIND.match(kind_field)
        if conflict:
            match = _CONFLICT_KIND.match(message) or conflict
            kind = "content" if match.group("kind") in ("contents", "content") else match.group("kind")
            for path in paths:
                if path in conflicted:
                    conflicts.append(Conflict(path, kind))
    seen = {c.path for c in conflicts}
    conflicts += [Conflict(p, "content") for p in conflicted if p not in seen]
    return MergeResult(tree=tree.strip(), conflicts=conflicts)
