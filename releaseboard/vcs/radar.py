"""The conflict radar's git: many merges in ONE `git merge-tree --write-tree --stdin` process.

merge-tree has to write the merged trees somewhere. They are thrown away, so they go to a
scratch object directory outside the mirror (GIT_OBJECT_DIRECTORY), which reads the
mirror's objects through GIT_ALTERNATE_OBJECT_DIRECTORIES and is deleted afterwards:
the mirror does not fill up with garbage trees, and nothing here takes the mirror lock.
The scratch directory is on tmpfs (/dev/shm) when there is one: 1,275 merges write about
4,000 small loose objects (about 1 MB), and creating them on disk took 2 to 5 times as
long as the merges themselves on this project's test machine.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from releaseboard.vcs.commands import GitError, run_git
from releaseboard.vcs.mirror import Mirror
from releaseboard.vcs.results import Conflict, MergeResult

_SHA = re.compile(r"^[0-9a-f]{40}$")
_CONFLICT_KIND = re.compile(r"^CONFLICT \((?P<kind>[^)]*)\)")
MERGE_TREE = ["merge-tree", "--write-tree", "--stdin", "-z", "--name-only", "--messages"]
SCRATCH_PREFIX = "releaseboard-radar-"
# A scratch directory this old was left by a worker killed mid-merge (a batch takes seconds).
STALE_SCRATCH_SECONDS = 3600
TMPFS = Path("/dev/shm")


def default_scratch_root(mirror: Mirror) -> Path:
    """Where scratch object directories go: tmpfs if this machine has one, else next to the mirror."""
    if TMPFS.is_dir() and os.access(TMPFS, os.W_OK | os.X_OK):
        return TMPFS
    return mirror.path.parent


def merge_pairs(
    mirror: Mirror, pairs: Sequence[tuple[str, str]], *, scratch_root: Path | None = None, observed: bool = True
) -> list[MergeResult]:
    """Merge each (ours, theirs) pair of commit SHAs in memory; results in the same order.

    One git process for all pairs; its objects go to a scratch directory under
    scratch_root (default: default_scratch_root) that is removed before returning. Only
    full SHAs are accepted: each becomes a line on merge-tree's stdin, where a space or
    a newline would start another argument or merge. observed=False: the mirror's
    observer (a job's log) is not told, as for a call from a thread of its own.
    """
    if not pairs:
        return []
    for ours, theirs in pairs:
        if not (_SHA.match(ours) and _SHA.match(theirs)):
            raise ValueError(f"merge_pairs needs full commit SHAs, not {ours!r} / {theirs!r}")
    objects = (mirror.path / "objects").resolve()
    root = scratch_root or default_scratch_root(mirror)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(root)
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=root)
    try:
        proc = run_git(
            # Level 0: the objects are deleted in a moment, compressing them is wasted time
            # (0.8 s -> 0.5 s for 1,275 merges on the benchmark repository).
            ["-C", str(mirror.path), "-c", "core.looseCompression=0", *MERGE_TREE],
            allow_local=mirror.allow_local,
            observer=mirror.observer if observed else None,
            check=False,
            input="".join(f"{ours} {theirs}\n" for ours, theirs in pairs).encode(),
            extra_env={"GIT_OBJECT_DIRECTORY": scratch, "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects)},
            timeout=mirror.local_timeout,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if proc.returncode != 0:
        # With --stdin a conflict is not an error (the status is in the output); any exit
        # code but 0 means git gave up on a merge, e.g. unrelated histories.
        raise GitError(MERGE_TREE, proc.returncode, proc.stderr.decode("utf-8", errors="replace"))
    results = parse_merge_tree_stdin(proc.stdout.decode("utf-8", errors="replace"))
    if len(results) != len(pairs):
        raise GitError(MERGE_TREE, 0, "", f"merge-tree answered {len(results)} merges for {len(pairs)} pairs")
    return results


def remove_stale_scratch(root: Path, older_than: float = STALE_SCRATCH_SECONDS) -> None:
    """Delete scratch directories that killed workers left under root."""
    cutoff = time.time() - older_than
    for path in root.glob(f"{SCRATCH_PREFIX}*"):
        try:
            if path.is_dir() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:
            continue


def parse_merge_tree_stdin(output: str) -> list[MergeResult]:
    """Parse `git merge-tree --write-tree --stdin -z --name-only --messages` output.

    Per merge: <1 clean|0 conflicted>NUL <tree>NUL, the conflicted paths each ending in
    NUL and an empty field, then the messages (<count>NUL <paths>NUL... <type>NUL
    <text>NUL each) and an empty field.
    """
    fields = output.split("\0")
    results: list[MergeResult] = []
    i = 0
    while i + 1 < len(fields) and fields[i] in ("0", "1"):
        clean, tree = fields[i] == "1", fields[i + 1]
        if not _SHA.match(tree):
            raise GitError(MERGE_TREE, 0, output[-500:], f"unexpected merge-tree output near field {i}")
        i += 2
        conflicted: list[str] = []
        if not clean:
            while fields[i]:
                conflicted.append(fields[i])
                i += 1
        i += 1  # the empty field that ends the paths (or, for a clean merge, the tree line)
        conflicts: list[Conflict] = []
        while i < len(fields) and fields[i]:
            count = int(fields[i])
            paths = fields[i + 1 : i + 1 + count]
            kind_field, message = fields[i + 1 + count], fields[i + 2 + count]
            i += count + 3
            # The stable type says "CONFLICT (contents)" for add/add too; only the message
            # (English: git runs with LANG=C) says "CONFLICT (add/add)".
            if _CONFLICT_KIND.match(kind_field):
                match = _CONFLICT_KIND.match(message) or _CONFLICT_KIND.match(kind_field)
                assert match is not None
                kind = "content" if match.group("kind") in ("contents", "content") else match.group("kind")
                conflicts += [Conflict(p, kind) for p in paths if p in conflicted]
        i += 1  # the empty field that ends this merge
        seen = {c.path for c in conflicts}
        conflicts += [Conflict(p, "content") for p in conflicted if p not in seen]
        results.append(MergeResult(tree=tree, conflicts=_unique(conflicts)))
    return results


def _unique(conflicts: list[Conflict]) -> list[Conflict]:
    """One entry per (path, kind), in order: git may say the same thing twice about a path."""
    return list(dict.fromkeys(conflicts))
