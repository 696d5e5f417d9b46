"""A persistent bare mirror of one remote: fetched, never cloned per job."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import time
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

from releaseboard.vcs.commands import (
    LOCAL_TIMEOUT_SECONDS,
    NETWORK_TIMEOUT_SECONDS,
    CommandObserver,
    GitError,
    GitTimeout,
    ls_remote,
    run_git,
)
from releaseboard.vcs.credentials import Credentials
from releaseboard.vcs.reads import FALLBACK, PLAIN_REF, ObjectReader
from releaseboard.vcs.results import (
    CommitInfo,
    Identity,
    MergeResult,
    PushRejected,
    RefUpdate,
    parse_merge_tree,
)
from releaseboard.vcs.worktrees import Worktrees

# A git lock or temporary pack file this old, found while we hold the mirror lock, was
# left by a git process that was killed (a worker crash, a job timeout): no live fetch of
# ours can own it. The age guards against a git we did not start (an admin's fsck).
STALE_FILE_SECONDS = 30
# (mirror path, url) pairs this process has already ensure()d: skips a git config process per fetch.
_ENSURED: set[tuple[str, str]] = set()


_SHA = re.compile(r"^[0-9a-f]{40}$")
_PUSH_REF = PLAIN_REF
# Where a tested merge commit waits for external CI (refs/releaseboard/candidates/<id>).
CANDIDATE_REF = re.compile(r"^refs/releaseboard/candidates/[0-9]{1,18}$")


class Mirror(Worktrees):
    """A bare repository at `path` that mirrors `url`'s branches and tags.

    Mutating steps (fetch, worktree checkouts) take a file lock, so jobs that share a
    worker machine do not trip over each other's ref locks. Objects written by
    merge-tree and commit-tree need no lock: git writes objects atomically.

    Every git command runs with a timeout: network_timeout for fetch, push and
    ls-remote, local_timeout for the rest; past it git is killed and GitTimeout raised.
    Refs and commit objects are read in-process where that gives git's answer
    (see reads.py); everything else runs git.
    """

    def __init__(
        self,
        path: Path,
        url: str,
        *,
        allow_local: bool,
        observer: CommandObserver | None = None,
        credentials: Credentials | None = None,
        network_timeout: float = NETWORK_TIMEOUT_SECONDS,
        local_timeout: float = LOCAL_TIMEOUT_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.url = url
        self.allow_local = allow_local
        self.observer = observer
        # Only fetch, push and ls_remote get these: no other git command talks to the remote.
        self.credentials = credentials
        self.network_timeout = network_timeout
        self.local_timeout = local_timeout
        self.reader = ObjectReader(self.path, allow_local=allow_local)
        # GitPython's Repo sits in reference cycles, so its cat-file processes would live
        # until a cyclic GC; a Mirror is not, and stops them as soon as it is dropped.
        self._close_reader = weakref.finalize(self, self.reader.close)

    def close(self) -> None:
        """Stop the object reader's persistent git processes (done too when the Mirror is dropped)."""
        self.reader.close()

    # -- plumbing ---------------------------------------------------------------------

    def git(
        self,
        *args: str,
        check: bool = True,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        observed: bool = True,
    ) -> str:
        """Run git in the mirror; `observed` False keeps housekeeping out of the job's steps."""
        proc = run_git(
            ["-C", str(self.path), *args],
            allow_local=self.allow_local,
            observer=self.observer if observed else None,
            check=check,
            input=input,
            extra_env=env,
            timeout=self.local_timeout,
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
                run_git(
                    ["init", "--quiet", "--bare", "--", str(self.path)],
                    allow_local=self.allow_local,
                    timeout=self.local_timeout,
                )
            run_git(
                ["-C", str(self.path), "config", "--", "remote.origin.url", self.url],
                allow_local=self.allow_local,
                timeout=self.local_timeout,
            )
        _ENSURED.add(key)

    def fetch(self) -> None:
        """Bring the mirror's branches and tags to the remote's, pruning deleted branches.

        Raises GitTimeout when the remote does not answer within network_timeout; the
        killed fetch's lock files and partial packs are removed before that, so the next
        fetch starts clean.
        """
        self.ensure()
        with self.locked():
            self.remove_stale_files()
            try:
                self._fetch()
            except GitTimeout:
                # The fetch we started is dead (killed with its helpers) and we hold the
                # mirror lock: whatever it left is garbage, whatever its age.
                self.remove_stale_files(older_than=-1)
                raise

    def _fetch(self) -> None:
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
            timeout=self.network_timeout,
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
        return ls_remote(
            self.url,
            allow_local=self.allow_local,
            observer=self.observer,
            credentials=self.credentials,
            timeout=self.network_timeout,
        )

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        """{refname: sha} under prefix, read from the ref files (git for-each-ref if unusual)."""
        found = self.reader.refs(prefix)
        if found is not FALLBACK:
            assert isinstance(found, dict)
            return found
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
        found = self.reader.resolve(rev)
        if found is not FALLBACK:
            assert found is None or isinstance(found, str)
            return found
        out = self.git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
        return out.strip() or None

    def branch_head(self, branch: str) -> str | None:
        return self.resolve(f"refs/heads/{branch}")

    def has_commit(self, sha: str) -> bool:
        return self.resolve(sha) is not None

    def has_loose_object(self, sha: str) -> bool:
        """Whether the mirror holds the object `sha` as a loose file, as every object this
        mirror wrote itself (commit-tree, mktag) is until a repack: a file test, no git
        process. False says nothing (the object may be packed): ask has_commit then."""
        return bool(_SHA.match(sha)) and (self.path / "objects" / sha[:2] / sha[2:]).is_file()

    # -- history ----------------------------------------------------------------------

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        proc = run_git(
            ["-C", str(self.path), "merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant],
            allow_local=self.allow_local,
            check=False,
            timeout=self.local_timeout,
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
        """The tree SHA of a commit (in-process for a full SHA the mirror has)."""
        found = self.reader.commit(commit)
        if found is not None:
            return found.tree.hexsha
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
            timeout=self.local_timeout,
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
            pushable = _PUSH_REF.match(update.ref) or CANDIDATE_REF.match(update.ref)
            if not pushable or ".." in update.ref or update.ref.endswith((".lock", "/", ".")):
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
            timeout=self.network_timeout,
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

    def delete_candidate(self, ref: str, expected: str) -> None:
        """Delete a candidate ref on the remote if it still holds `expected` (compare-and-swap)."""
        if not CANDIDATE_REF.match(ref) or not _SHA.match(expected):
            raise GitError(["push"], 1, "", f"not a candidate ref and SHA: {ref!r} / {expected!r}")
        run_git(
            [
                "-C",
                str(self.path),
                "push",
                "--porcelain",
                f"--force-with-lease={ref}:{expected}",
                "origin",
                "--",
                f":{ref}",
            ],
            allow_local=self.allow_local,
            observer=self.observer,
            credentials=self.credentials,
            timeout=self.network_timeout,
        )
