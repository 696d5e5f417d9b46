"""Who put which commits on a branch: for the drift alarm, which names the commits
Releaseboard did not push, with their authors and committers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from releaseboard.vcs.mirror import Mirror


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
