"""A persistent bare mirror of one remote: fetched, never cloned per job."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from releaseboard.vcs.commands import CommandObserver, GitError, ls_remote, run_git
from releaseboard.vcs.credentials import Credentials

WORKTREE_SLOTS = 8
# A git lock or temporary pack file this old, found while we hold the mirror lock, was
# left by a git process that was killed (a worker crash, a job timeout): no live fetch of
# ours can own it. The age guards against a git we did not start (an admin's fsck).
STALE_FILE_SECONDS = 30
# (mirror path, url) pairs this process has already ensure()d: skips a git config process per fetch.
_ENSURED: set[tuple[str, str]] = set()


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


_SHA = re.compile(r"^[0-9a-f]{40}$")
# What check-ref-format refuses anyway, and ":" (a refspec separator), for branch and tag refs.
# No part may start with "-" (git's own CLI refuses such branch names) or ".".
_PUSH_REF = re.compile(r"^refs/(heads|tags)/(?![-.])(?!.*(\.\.|@\{|//|/[-.]))[^\x00-\x20\x7f:~^?*\[\\]+$")
_CONFLICT_KIND = re.compile(r"^CONFLICT \((?P<kind>[^)]*)\)")


class Mirror:
    """A bare repository at `path` that mirrors `url`'s branches and tags.

    Mutating steps (fetch, worktree checkouts) take a file lock, so jobs that share a
    worker machine do not trip over each other's ref locks. Objects written by
    merge-tree and commit-tree need no lock: git writes objects atomically.
    """

    def __init__(
        self,
        path: Path,
        url: str,
        *,
        allow_local: bool,
        observer: CommandObserver | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.path = Path(path)
        self.url = url
        self.allow_local = allow_local
        self.observer = observer
        # Only fetch, push and ls_remote get these: no other git command talks to the remote.
        self.credentials = credentials

    # -- plumbing ---------------------------------------------------------------------

    def git(self, *args: str, check: bool = True, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
        proc = run_git(
            ["-C", str(self.path), *args],
            allow_local=self.allow_local,
            observer=self.observer,
            check=check,
            input=input,
            extra_env=env,
        )
        return proc.stdout.decode("utf-8", errors="replace")

    @contextlib.contextmanager
    def locked(self, name: str = "mirror") -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.parent / f"{self.path.name}.{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- sync -------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the bare mirror if needed and point it at the configured URL."""
        key = (str(self.path), self.url)
        if key in _ENSURED and (self.path / "HEAD").exists():
            return  # this process already pointed this mirror at this URL
        with self.locked():
            if not (self.path / "HEAD").exists():
                self.path.mkdir(parents=True, exist_ok=True)
                run_git(["init", "--quiet", "--bare", "--", str(self.path)], allow_local=self.allow_local)
            run_git(["-C", str(self.path), "config", "--", "remote.origin.url", self.url], allow_local=self.allow_local)
        _ENSURED.add(key)

    def fetch(self) -> None:
        """Bring the mirror's branches and tags to the remote's, pruning deleted branches."""
        self.ensure()
        with self.locked():
            self.remove_stale_files()
            run_git(
                [
                    "-C",
                    str(self.path),
                    "fetch",
                    "--prune",
                    "--no-write-fetch-head",
                    "origin",
                    "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                allow_local=self.allow_local,
                observer=self.observer,
                credentials=self.credentials,
            )

    def remove_stale_files(self, older_than: float = STALE_FILE_SECONDS) -> list[Path]:
        """Delete lock files and partial packs a killed git left in the mirror; return them.

        A fetch killed mid-way leaves shallow.lock, packed-refs.lock or refs/.../x.lock,
        and every later fetch would fail on them ("Unable to create ... .lock: File
        exists") until someone deletes them by hand. Call with the mirror lock held.
        """
        cutoff = time.time() - older_than
        candidates: list[Path] = []
        if self.path.is_dir():
            candidates += [p for p in self.path.iterdir() if p.name.endswith(".lock")]
            for folder in ("refs", "logs"):
                for root, _dirs, files in os.walk(self.path / folder):  # never follows symlinks
                    candidates += [Path(root, f) for f in files if f.endswith(".lock")]
            pack = self.path / "objects" / "pack"
            if pack.is_dir():
                candidates += [p for p in pack.iterdir() if p.name.startswith("tmp_") or p.name.endswith(".lock")]
        removed = []
        for candidate in candidates:
            try:
                info = candidate.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                candidate.unlink(missing_ok=True)
                removed.append(candidate)
        return removed

    def ls_remote(self) -> dict[str, str]:
        """The remote's refs read afresh (not the mirror's copy), with this mirror's credentials."""
        return ls_remote(self.url, allow_local=self.allow_local, observer=self.observer, credentials=self.credentials)

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(objectname) %(refname)", "--", prefix)
        refs = {}
        for line in out.splitlines():
            sha, _, name = line.partition(" ")
            refs[name] = sha
        return refs

    def heads(self) -> dict[str, str]:
        """{branch name: sha} as of the last fetch."""
        return {name.removeprefix("refs/heads/"): sha for name, sha in self.refs("refs/heads/").items()}

    def tags(self) -> list[str]:
        return [name.removeprefix("refs/tags/") for name in self.refs("refs/tags/")]

    def resolve(self, rev: str) -> str | None:
        """The commit SHA `rev` names, or None when it does not exist."""
        out = self.git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
        return out.strip() or None

    def branch_head(self, branch: str) -> str | None:
        return self.resolve(f"refs/heads/{branch}")

    def has_commit(self, sha: str) -> bool:
        return self.resolve(sha) is not None

    # -- history ----------------------------------------------------------------------

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        proc = run_git(
            ["-C", str(self.path), "merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant],
            allow_local=self.allow_local,
            check=False,
        )
        if proc.returncode not in (0, 1):
            raise GitError(["merge-base"], proc.returncode, proc.stderr.decode(errors="replace"))
        return proc.returncode == 0

    def count_between(self, base: str, tip: str) -> tuple[int, int]:
        """(behind, ahead): commits in base not in tip, and in tip not in base."""
        out = self.git("rev-list", "--left-right", "--count", "--end-of-options", f"{base}...{tip}")
        behind, ahead = out.split()
        return int(behind), int(ahead)

    def commits_between(self, base: str | None, tip: str, limit: int = 500) -> list[CommitInfo]:
        """Commits reachable from tip but not from base, newest first."""
        rev = f"{base}..{tip}" if base else tip
        # One git log for all of them: fields split by \x1f, records by NUL (-z). %B is the
        # raw message; the trailers come parsed and unfolded, one "Key: value" per \x1e.
        out = self.git(
            "log",
            f"--max-count={limit}",
            "-z",
            "--format=%H%x1f%an%x1f%ae%x1f%at%x1f%(trailers:only,unfold,separator=%x1e)%x1f%B",
            "--end-of-options",
            rev,
            "--",
        )
        result = []
        for record in out.split("\0"):
            if not record:
                continue
            sha, name, email, at, trailer_text, message = record.split("\x1f", 5)
            trailers: dict[str, list[str]] = {}
            for line in trailer_text.split("\x1e"):
                key, sep, value = line.partition(":")
                if sep:
                    trailers.setdefault(key.strip(), []).append(value.strip())
            result.append(
                CommitInfo(
                    sha=sha,
                    subject=message.splitlines()[0] if message else "",
                    author_name=name,
                    author_email=email,
                    authored_at=int(at),
                    trailers=trailers,
                )
            )
        return result

    def tree_of(self, commit: str) -> str:
        return self.git("rev-parse", "--verify", "--end-of-options", f"{commit}^{{tree}}").strip()

    # -- writing objects ---------------------------------------------------------------

    def merge(self, ours: str, theirs: str) -> MergeResult:
        """Merge two commits in memory (merge-tree --write-tree); no worktree, no refs."""
        proc = run_git(
            [
                "-C",
                str(self.path),
                "merge-tree",
                "--write-tree",
                "-z",
                "--name-only",
                "--messages",
                "--end-of-options",
                ours,
                theirs,
            ],
            allow_local=self.allow_local,
            observer=self.observer,
            check=False,
        )
        # merge-tree also exits 1 for "not something we can merge", and then prints no tree.
        tree = proc.stdout.partition(b"\0")[0].decode(errors="replace")
        if proc.returncode not in (0, 1) or not _SHA.match(tree):
            raise GitError(["merge-tree"], proc.returncode, proc.stderr.decode(errors="replace"))
        return parse_merge_tree(proc.stdout.decode("utf-8", errors="replace"), proc.returncode == 0)

    def commit_tree(
        self, tree: str, parents: Sequence[str], message: str, *, author: Identity, committer: Identity, timestamp: int
    ) -> str:
        """Write a commit object. With the same inputs it has the same SHA on every worker."""
        args = ["commit-tree"]
        for parent in parents:
            args += ["-p", parent]
        args += ["-F", "-", "--end-of-options", tree]
        env = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_AUTHOR_DATE": f"{timestamp} +0000",
            "GIT_COMMITTER_NAME": committer.name,
            "GIT_COMMITTER_EMAIL": committer.email,
            "GIT_COMMITTER_DATE": f"{timestamp} +0000",
        }
        return self.git(*args, input=message.encode(), env=env).strip()

    def make_tag(self, name: str, target: str, message: str, *, tagger: Identity, timestamp: int) -> str:
        """Write an annotated tag object for `target` (no ref is created locally)."""
        # The tag object is a text format: a newline in any header value would add headers.
        if not _SHA.match(target):
            raise GitError(["mktag"], 1, "", f"not a full commit SHA: {target!r}")
        if any(ord(c) < 32 for c in name + tagger.name + tagger.email) or name.startswith("-"):
            raise GitError(["mktag"], 1, "", f"not a valid tag name: {name!r}")
        body = (
            f"object {target}\ntype commit\ntag {name}\n"
            f"tagger {tagger.name} <{tagger.email}> {timestamp} +0000\n\n{message.rstrip()}\n"
        )
        return self.git("mktag", input=body.encode()).strip()

    # -- pushing ----------------------------------------------------------------------

    def push(self, updates: Sequence[RefUpdate], *, atomic: bool = False) -> None:
        """Push with compare-and-swap: each branch update names the SHA expected there.

        Never a bare force: a ref with an expectation is pushed with
        --force-with-lease=<ref>:<expected>; a tag without one is a plain push, which the
        remote refuses if the tag exists, so tags never move. atomic makes all updates
        land together or none.
        """
        for update in updates:
            # Refs and SHAs become refspecs ("<new>:<ref>"): a "+" would force, a ":" would
            # name another ref, a leading "-" would be read as an option by a careless caller.
            if not _SHA.match(update.new) or (update.expected and not _SHA.match(update.expected)):
                raise GitError(["push"], 1, "", f"push needs full SHAs, not {update.new!r} / {update.expected!r}")
            if not _PUSH_REF.match(update.ref) or ".." in update.ref or update.ref.endswith((".lock", "/", ".")):
                raise GitError(["push"], 1, "", f"not a branch or tag ref: {update.ref!r}")
        args = ["push", "--porcelain"]
        if atomic:
            args.append("--atomic")
        for update in updates:
            if update.expected is not None:
                args.append(f"--force-with-lease={update.ref}:{update.expected}")
        args += ["origin", "--"]
        args += [f"{u.new}:{u.ref}" for u in updates]
        proc = run_git(
            ["-C", str(self.path), *args],
            allow_local=self.allow_local,
            observer=self.observer,
            check=False,
            credentials=self.credentials,
        )
        output = (proc.stdout + proc.stderr).decode("utf-8", errors="replace")
        if proc.returncode == 0:
            return
        rejected = {}
        for line in proc.stdout.decode(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[0] == "!":
                ref = parts[1].partition(":")[2]
                rejected[ref] = parts[2]
        if rejected:
            raise PushRejected(args, proc.returncode, output, rejected)
        raise GitError(args, proc.returncode, output)

    # -- worktrees for test runs --------------------------------------------------------

    @contextlib.contextmanager
    def checkout(self, worktrees: Path, commit: str) -> Iterator[Path]:
        """Check `commit` out in a free persistent worktree slot, clean, for a test run.

        A worker running several jobs at once gets one slot each; a slot is reused by the
        next job (checkout --detach -f, clean -ffdx), never cloned afresh.
        """
        if not _SHA.match(commit):
            raise ValueError(f"not a full commit SHA: {commit!r}")
        worktrees.mkdir(parents=True, exist_ok=True)
        for slot in range(WORKTREE_SLOTS):
            handle = open(worktrees / f"slot-{slot}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                path = worktrees / f"slot-{slot}"
                self._prepare_worktree(path, commit)
                yield path
                return
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
        raise GitError(["worktree"], 1, "", f"all {WORKTREE_SLOTS} worktree slots are busy")

    def _prepare_worktree(self, path: Path, commit: str) -> None:
        with self.locked():
            if not (path / ".git").exists():
                if path.exists():
                    # A half-written worktree from a crashed job: start it again.
                    shutil.rmtree(path)
                self.git("worktree", "prune")
                self.git("worktree", "add", "--detach", "-f", "--end-of-options", str(path), commit)
                return
        # A job that crashed mid-checkout leaves index.lock behind; it would block us forever.
        gitdir = Path((path / ".git").read_text().partition("gitdir:")[2].strip())
        (gitdir / "index.lock").unlink(missing_ok=True)
        # checkout has no --end-of-options in git 2.39; the commit is a full SHA (checked above).
        run_git(
            ["-C", str(path), "checkout", "--detach", "-f", commit],
            allow_local=self.allow_local,
            observer=self.observer,
        )
        run_git(["-C", str(path), "clean", "-ffdx"], allow_local=self.allow_local, observer=self.observer)


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
