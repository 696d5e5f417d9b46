"""Reads that start no git process per call: refs from the ref files, objects through
GitPython's object database.

A bare mirror's refs are plain files (loose refs) plus one `packed-refs` file; reading
them takes about half the time of a `git for-each-ref` process. Objects (a commit, its
parents, its tree) come from the Repo's object database, which keeps one `git cat-file
--batch` process open for all reads: about 0.1 ms a read against 3 ms for a `git
rev-parse` process. Anything this module does not handle exactly as git would (a
revision expression, a symbolic ref, a name that is not a plain branch or tag ref)
returns FALLBACK, and the caller runs git with `--end-of-options` as before.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

import git
from git.refs import SymbolicReference

from releaseboard.vcs.commands import git_env

_SHA = re.compile(r"^[0-9a-f]{40}$")
# A full SHA, optionally with ^ or ^N: the only revision expressions read in-process.
_SHA_PARENT = re.compile(r"^(?P<sha>[0-9a-f]{40})(?:\^(?P<n>[1-9]?))?$")
# What check-ref-format refuses anyway, and ":" (a refspec separator), for branch and tag refs.
# No part may start with "-" (git's own CLI refuses such branch names) or ".". A name that
# passes cannot leave the refs/ folder (no "..", no "//"), so it is safe as a file path too.
PLAIN_REF = re.compile(r"^refs/(heads|tags)/(?![-.])(?!.*(\.\.|@\{|//|/[-.]))[^\x00-\x20\x7f:~^?*\[\\]+$")
_REF_PREFIX = re.compile(r"^refs/(?:[a-z]+/)?$")


class _Fallback:
    def __repr__(self) -> str:
        return "FALLBACK"


FALLBACK: Final = _Fallback()


class ObjectReader:
    """In-process reads of one bare repository; open lazily, closed with close()."""

    def __init__(self, path: Path, *, allow_local: bool) -> None:
        self.path = Path(path)
        self.allow_local = allow_local
        self._repo: git.Repo | None = None

    @property
    def repo(self) -> git.Repo | None:
        """The GitPython Repo, or None while the mirror does not exist yet."""
        if self._repo is None and (self.path / "HEAD").exists():
            repo = git.Repo(self.path)
            # Its cat-file process runs with the same locked-down environment as run_git.
            repo.git.update_environment(**git_env(self.allow_local))
            self._repo = repo
        return self._repo

    def close(self) -> None:
        """Stop the persistent cat-file processes (they also stop when this is collected)."""
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    # -- refs ---------------------------------------------------------------------------

    def refs(self, prefix: str) -> dict[str, str] | _Fallback:
        """{refname: sha} under prefix (like for-each-ref's %(objectname)), sorted by name."""
        if not _REF_PREFIX.match(prefix) or not (self.path / "HEAD").exists():
            return FALLBACK
        # Loose refs first, then packed-refs: a `pack-refs` that runs in between moves a ref
        # from the first to the second, so it is seen at least once (loose wins, as in git).
        found = _loose_refs(str(self.path), prefix)
        if found is FALLBACK:
            return FALLBACK
        assert isinstance(found, dict)
        try:
            packed = (self.path / "packed-refs").read_text()
        except FileNotFoundError:
            packed = ""
        for line in packed.splitlines():
            if line.startswith(("#", "^")):
                continue
            sha, _, name = line.partition(" ")
            if name.startswith(prefix) and _SHA.match(sha):
                found.setdefault(name, sha)
        return dict(sorted(found.items()))

    # -- objects ------------------------------------------------------------------------

    def resolve(self, rev: str) -> str | None | _Fallback:
        """The commit SHA `rev` names (None when there is none), like
        `git rev-parse --verify --quiet <rev>^{commit}`, for full SHAs (with ^ or ^N) and
        plain branch or tag refs; FALLBACK for anything else."""
        repo = self.repo
        if repo is None:
            return FALLBACK
        match = _SHA_PARENT.match(rev)
        if match:
            commit = self.commit(match["sha"])
            if commit is None or match["n"] is None:
                return commit.hexsha if commit else None
            n = int(match["n"] or 1)
            parents = commit.parents
            return parents[n - 1].hexsha if n <= len(parents) else None
        if PLAIN_REF.match(rev) and not rev.endswith((".lock", "/", ".")):
            try:
                sha = SymbolicReference.dereference_recursive(repo, rev)
            except ValueError:
                return None  # no such ref
            commit = self.commit(sha)
            return commit.hexsha if commit else None
        return FALLBACK

    def commit(self, sha: str) -> git.Commit | None:
        """The commit a full SHA names (peeling annotated tags), or None."""
        repo = self.repo
        # GitPython answers the all-zero SHA with an empty commit without asking git.
        if repo is None or not _SHA.match(sha) or sha == "0" * 40:
            return None
        try:
            obj = git.Object.new_from_sha(repo, bytes.fromhex(sha))
            while isinstance(obj, git.TagObject):
                obj = obj.object
        except ValueError:  # cat-file says "missing"
            return None
        return obj if isinstance(obj, git.Commit) else None


def _loose_refs(path: str, prefix: str) -> dict[str, str] | _Fallback:
    """{refname: sha} of the loose ref files under `prefix`; FALLBACK on a symbolic ref, a
    symlink, a file that is not a plain SHA or a folder or file that cannot be read (git
    decides those). Plain os.scandir and bytes, not pathlib: a mirror keeps a loose file
    per branch a fetch wrote, and this runs for every job (a quarter of the time of
    os.walk and Path at 120 refs)."""
    found: dict[str, str] = {}
    pending = [(os.path.join(path, prefix), prefix)]
    try:
        while pending:
            directory, relative = pending.pop()
            try:
                entries = os.scandir(directory)
            except (FileNotFoundError, NotADirectoryError):
                continue  # no such folder (yet), or removed while we looked
            with entries:
                for entry in entries:
                    if entry.is_symlink():
                        return FALLBACK
                    if entry.is_dir():
                        pending.append((entry.path, f"{relative}{entry.name}/"))
                        continue
                    if entry.name.endswith(".lock"):
                        continue
                    try:
                        with open(entry.path, "rb") as handle:
                            value = handle.read().strip().decode("ascii")
                    except FileNotFoundError:
                        continue  # deleted while we looked
                    if not _SHA.match(value):
                        return FALLBACK  # a symbolic ref or something odd: let git decide
                    found[relative + entry.name] = value
    except (OSError, UnicodeDecodeError):
        return FALLBACK  # unreadable, or not text: let git decide
    return found
