"""Read what a promotion brings from the worker's mirror, for the promotion page.

Runs in the test job, right after the merge check (no git in the web request path).
Everything is capped, so a huge branch cannot fill the database: past the caps the
page says what was left out instead of showing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from releaseboard import vcs

MAX_COMMITS = 200
MAX_FILES = 300
MAX_FILE_PATCH_CHARS = 80_000  # a bigger patch is counted, not stored
MAX_TOTAL_PATCH_CHARS = 1_000_000
LARGE_FILE_LINES = 300  # shown collapsed; loaded on demand
MAX_CONFLICT_HUNKS = 20
CONTEXT_LINES = 3
MAX_LANDED = 5

_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class Review:
    commits: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    def as_data(self) -> dict[str, Any]:
        return {"commits": self.commits, "files": self.files, "conflicts": self.conflicts, "truncated": self.truncated}


def _check(*shas: str) -> None:
    for sha in shas:
        if not _SHA.match(sha):
            raise ValueError(f"not a commit SHA: {sha!r}")


def read_review(
    mirror: vcs.Mirror,
    staging: str,
    branch_sha: str,
    *,
    merge_sha: str = "",
    conflict_tree: str = "",
    conflict_paths: list[str] | None = None,
) -> Review:
    """The commits `branch_sha` brings over `staging`, the files and patch that land (the
    merge result against staging, or against the merge base for a conflict), and for a
    conflict the conflicting hunks of `conflict_tree` (merge-tree's tree with markers)."""
    _check(staging, branch_sha, *([merge_sha] if merge_sha else []), *([conflict_tree] if conflict_tree else []))
    review = Review()
    for commit in mirror.commits_between(staging, branch_sha, limit=MAX_COMMITS + 1)[:MAX_COMMITS]:
        review.commits.append(
            {
                "sha": commit.sha,
                "author": commit.author_name,
                "email": commit.author_email,
                "at": commit.authored_at,
                "subject": commit.subject,
            }
        )
    # The merge base is needed for a conflict (no merge commit to diff against) only.
    base = "" if merge_sha and not conflict_tree else _merge_base(mirror, staging, branch_sha)
    old = staging if merge_sha else base
    new = merge_sha or branch_sha
    if _SHA.match(old):
        review.files, review.truncated = _files(mirror, old, new)
    if conflict_tree:
        review.conflicts = [
            _conflict(mirror, conflict_tree, path, base, staging) for path in (conflict_paths or [])[:MAX_FILES]
        ]
    return review


def _merge_base(mirror: vcs.Mirror, staging: str, branch_sha: str) -> str:
    return mirror.git("merge-base", "--end-of-options", staging, branch_sha, check=False).strip()


def _files(mirror: vcs.Mirror, old: str, new: str) -> tuple[list[dict[str, Any]], bool]:
    # One git process for both: the NUL-separated numstat records, an empty record, the patch.
    out = mirror.git(
        "diff",
        "--numstat",
        "--patch",
        "-z",
        "--no-color",
        "--no-renames",
        "--no-ext-diff",
        "--end-of-options",
        old,
        new,
    )
    numstat, _, patch = out.partition("\0\0")
    files: list[dict[str, Any]] = []
    for record in numstat.split("\0"):
        added, _, rest = record.partition("\t")
        deleted, _, path = rest.partition("\t")
        if not path:
            continue
        binary = added == "-"
        files.append(
            {
                "path": path,
                "added": 0 if binary else int(added),
                "deleted": 0 if binary else int(deleted),
                "binary": binary,
                "patch": "",
                "omitted": "",
            }
        )
    truncated = len(files) > MAX_FILES
    files = files[:MAX_FILES]
    parts = re.split(r"(?m)^(?=diff --git )", patch)
    parts = [p for p in parts if p.startswith("diff --git ")]
    # numstat and the patch list files in the same order; if they ever disagree, show counts only.
    if len(parts) < len(files) or (len(parts) > len(files) and not truncated):
        return files, True
    total = 0
    for entry, part in zip(files, parts, strict=False):
        body = part.split("\n@@", 1)
        hunks = "@@" + body[1] if len(body) == 2 else ""
        if entry["binary"]:
            entry["omitted"] = "binary file"
        elif len(hunks) > MAX_FILE_PATCH_CHARS:
            entry["omitted"] = f"the change is {len(hunks) // 1000} kB, too large to show here"
        elif total + len(hunks) > MAX_TOTAL_PATCH_CHARS:
            entry["omitted"] = "left out: the promotion's diff is too large to show in full"
            truncated = True
        else:
            entry["patch"] = hunks
            total += len(hunks)
    return files, truncated


def _conflict(mirror: vcs.Mirror, tree: str, path: str, base: str, staging: str) -> dict[str, Any]:
    text = mirror.git("cat-file", "-p", f"{tree}:{path}", check=False)
    lines = text.splitlines()
    hunks: list[dict[str, Any]] = []
    i = 0
    while i < len(lines) and len(hunks) < MAX_CONFLICT_HUNKS:
        if lines[i].startswith("<<<<<<< "):
            end = i
            while end < len(lines) and not lines[end].startswith(">>>>>>> "):
                end += 1
            start = max(0, i - CONTEXT_LINES)
            stop = min(len(lines), end + 1 + CONTEXT_LINES)
            hunks.append({"line": start + 1, "text": "\n".join(lines[start:stop])})
            i = end + 1
        else:
            i += 1
    landed = []
    if _SHA.match(base):
        log = mirror.git(
            "log",
            f"--max-count={MAX_LANDED}",
            # Staging's own line: each promotion is one merge commit there, with its trailer.
            "--first-parent",
            "--format=%H%x1f%an%x1f%s%x1f%(trailers:key=Releaseboard-Promotion,valueonly,separator=%x2c)%x1e",
            "--end-of-options",
            f"{base}..{staging}",
            "--",
            path,
            check=False,
        )
        for record in log.split("\x1e"):
            fields = record.strip("\n").split("\x1f")
            if len(fields) == 4:
                landed.append(
                    {"sha": fields[0], "author": fields[1], "subject": fields[2], "promotion": fields[3].strip()}
                )
    return {"path": path, "hunks": hunks, "landed": landed}
