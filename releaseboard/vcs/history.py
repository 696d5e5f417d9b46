"""Who put which commits on a branch (for the drift alarm, which names the commits
Releaseboard did not push, with their authors and committers), and the shape of history
as parent maps (for the branch facts, which do their reachability arithmetic in Python)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from releaseboard.vcs.mirror import Mirror

_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class CommitPeople:
    """A commit with both people on it: who wrote it and who committed it (they differ
    after a cherry-pick, a rebase or an amend by someone else)."""

    sha: str
    subject: str
    author_name: str
    author_email: str
    committer_name: str
    committer_email: str


def commits_not_in(mirror: Mirror, tip: str, exclude: Sequence[str], limit: int = 500) -> list[CommitPeople]:
    """Commits reachable from `tip` and from none of `exclude`, newest first, in one git log.

    SHAs in `exclude` that this mirror does not have are ignored (a commit Releaseboard
    pushed from another worker's mirror, or one a forced push left unreachable).
    """
    out = mirror.git(
        "log",
        "--ignore-missing",
        f"--max-count={limit}",
        "-z",
        "--format=%H%x1f%an%x1f%ae%x1f%cn%x1f%ce%x1f%s",
        "--end-of-options",
        tip,
        *(f"^{sha}" for sha in exclude if sha),
        "--",
    )
    result = []
    for record in out.split("\0"):
        if record:
            sha, author, author_email, committer, committer_email, subject = record.split("\x1f", 5)
            result.append(CommitPeople(sha, subject, author, author_email, committer, committer_email))
    return result


def _check_shas(what: str, shas: Sequence[str]) -> None:
    for sha in shas:
        if not _SHA.match(sha):
            raise ValueError(f"{what} needs full commit SHAs, not {sha!r}")


def common_ancestor(mirror: Mirror, commits: Sequence[str]) -> str | None:
    """A best common ancestor of all of `commits` (`git merge-base --octopus`), or None
    when they share no history. Full SHAs only, as for parent_map."""
    _check_shas("common_ancestor", commits)
    if len(set(commits)) == 1:
        return commits[0]
    out = mirror.git("merge-base", "--octopus", "--end-of-options", *commits, check=False)
    return out.strip() or None


def parent_map(
    mirror: Mirror, tips: Sequence[str], exclude: Sequence[str] = (), limit: int | None = None
) -> dict[str, tuple[str, ...]]:
    """{commit: its parents} for the commits reachable from any of `tips` and from none of
    `exclude`, in one `git rev-list --parents --topo-order`.

    The dict keeps git's order, children before parents, so the first `limit` commits are
    closed under descendants: every commit between a tip and a listed commit is listed too.
    Parents may lie outside the map (the commits `exclude` has, or past `limit`). Only full
    SHAs are accepted: each becomes an argument of its own, and a name could be an option.
    """
    _check_shas("parent_map", [*tips, *exclude])
    if not tips:
        return {}
    count = [f"--max-count={limit}"] if limit is not None else []
    out = mirror.git(
        "rev-list", "--parents", "--topo-order", *count, "--end-of-options", *tips, *(f"^{s}" for s in exclude), "--"
    )
    result: dict[str, tuple[str, ...]] = {}
    for line in out.splitlines():
        sha, *parents = line.split()
        result[sha] = tuple(parents)
    return result
