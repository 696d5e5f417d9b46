"""Worktrees for test runs: a few persistent slots per worker, each checked out clean for
one job at a time (a Mirror's part; kept apart so the mirror module stays one thing)."""

from __future__ import annotations

import contextlib
import fcntl
import re
import shutil
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
            self, *args: str, check: bool = True, input: bytes | None = None, env: dict[str, str] | None = None
        ) -> str: ...

        def locked(self, name: str = "mirror") -> AbstractContextManager[None]: ...

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
            handle = open(worktrees / f"slot-{slot}.lock", "w")  # noqa: SIM115  (held across the yield)
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
            gitdir = self._own_worktree_gitdir(path)
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
