"""Worktrees for test runs: a few persistent slots per worker, each checked out clean for
one job at a time (a Mirror's part; kept apart so the mirror module stays one thing)."""

from __future__ import annotations

import contextlib
import fcntl
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from releaseboard.vcs.commands import CommandObserver, GitError, run_git

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

WORKTREE_SLOTS = 8
_SHA = re.compile(r"^[0-9a-f]{40}$")


class Worktrees:
    """Mixed into Mirror, whose repository, options and lock these methods use."""

    path: Path
    allow_local: bool
    observer: CommandObserver | None
    local_timeout: float

    if TYPE_CHECKING:  # Mirror's own, declared for the type checker

        def git(
            self,
            *args: str,
            check: bool = True,
            input: bytes | None = None,
            env: dict[str, str] | None = None,
            observed: bool = True,
        ) -> str: ...

        def locked(self, name: str = "mirror") -> AbstractContextManager[None]: ...

    @contextlib.contextmanager
    def checkout(self, worktrees: Path, commit: str, spares: Path | None = None) -> Iterator[Path]:
        """Check `commit` out in a free persistent worktree slot, clean, for a test run.

        A worker running several jobs at once gets one slot each; a slot is reused by the
        next job (checkout --detach -f, clean -ffdx), never cloned afresh. A slot that has
        no worktree yet takes one a finished run gave back to `spares` (`give_back`),
        when there is one: its checkout then writes only the files that differ (a fresh
        worktree of a large repository writes every file, seconds for 20,000 files).
        """
        if not _SHA.match(commit):
            raise ValueError(f"not a full commit SHA: {commit!r}")
        worktrees.mkdir(parents=True, exist_ok=True)
        for slot in range(WORKTREE_SLOTS):
            handle = open(worktrees / f"slot-{slot}.lock", "w")  # noqa: SIM115  (held across the yield)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                path = worktrees / f"slot-{slot}"
                self._prepare_worktree(path, commit, spares)
                yield path
                return
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
        raise GitError(["worktree"], 1, "", f"all {WORKTREE_SLOTS} worktree slots are busy")

    def _prepare_worktree(self, path: Path, commit: str, spares: Path | None = None) -> None:
        with self.locked():
            gitdir = self._own_worktree_gitdir(path)
            if gitdir is None and spares is not None and not path.exists():
                gitdir = self._adopt_spare(spares, path)
            if gitdir is None:
                if path.exists():
                    # A half-written worktree from a crashed job, or one of another mirror
                    # (an environment or repository id used again after its row was
                    # deleted, a mirror rebuilt from scratch): start it again.
                    shutil.rmtree(path)
                self.git("worktree", "prune")
                self.git("worktree", "add", "--detach", "-f", "--end-of-options", str(path), commit)
                return
        # A job that crashed mid-checkout leaves index.lock behind; it would block us forever.
        (gitdir / "index.lock").unlink(missing_ok=True)
        # checkout has no --end-of-options in git 2.39; the commit is a full SHA (checked above).
        run_git(
            ["-C", str(path), "checkout", "--detach", "-f", commit],
            allow_local=self.allow_local,
            observer=self.observer,
            timeout=self.local_timeout,
        )
        run_git(
            ["-C", str(path), "clean", "-ffdx"],
            allow_local=self.allow_local,
            observer=self.observer,
            timeout=self.local_timeout,
        )

    def give_back(self, path: Path, spares: Path) -> None:
        """Keep the worktree at `path`, whose run has ended (nothing runs in it any more:
        the caller's sandbox has killed the command's whole tree), for a later checkout
        with `spares`. At most WORKTREE_SLOTS are kept; past that it is removed."""
        with self.locked():
            spares.mkdir(parents=True, exist_ok=True)
            if self._own_worktree_gitdir(path) is None or sum(1 for _ in spares.iterdir()) >= WORKTREE_SLOTS:
                shutil.rmtree(path, ignore_errors=True)
                return
            spare = spares / f"spare-{uuid.uuid4().hex}"
            path.rename(spare)
            # Under the mirror's lock, as `worktree prune` is: git's record of the
            # worktree follows it before any prune could take it for a deleted one.
            # Housekeeping after the job's own work: not a step of its log.
            self.git("worktree", "repair", str(spare), observed=False)

    def _adopt_spare(self, spares: Path, path: Path) -> Path | None:
        """Move a given-back worktree to `path` (called under the mirror's lock); its git
        directory, or None when there is none to take."""
        if not spares.is_dir():
            return None
        for spare in sorted(spares.iterdir()):
            path.parent.mkdir(parents=True, exist_ok=True)
            spare.rename(path)
            try:
                self.git("worktree", "repair", str(path))
            except GitError:
                shutil.rmtree(path, ignore_errors=True)
                continue
            gitdir = self._own_worktree_gitdir(path)
            if gitdir is not None:
                return gitdir
            shutil.rmtree(path, ignore_errors=True)
        return None

    def _own_worktree_gitdir(self, path: Path) -> Path | None:
        """The slot's git directory when the slot is a worktree of this mirror, else None."""
        try:
            pointer = (path / ".git").read_text()
        except OSError:  # no slot yet, or a directory where the pointer file should be
            return None
        gitdir = Path(pointer.partition("gitdir:")[2].strip())
        if not gitdir.is_dir() or gitdir.resolve().parent != (self.path / "worktrees").resolve():
            return None
        return gitdir
