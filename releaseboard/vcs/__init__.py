"""All of Releaseboard's git: a persistent bare mirror per repository, merges computed
with merge-tree, compare-and-swap pushes, tags, worktrees for test runs, ls-remote.

This is the only package that runs or reads git, and the only one that imports GitPython:
every command goes through its `git.Git` command object (argv lists, a locked-down
environment, a timeout), and refs and commit objects are read in-process (reads.py).
No Django here.
"""

from __future__ import annotations

from releaseboard.vcs.commands import (
    LOCAL_TIMEOUT_SECONDS,
    NETWORK_TIMEOUT_SECONDS,
    CommandObserver,
    GitError,
    GitTimeout,
    InvalidRemoteURL,
    check_branch_name,
    check_remote_url,
    drop_inherited_git_environment,
    ls_remote,
)
from releaseboard.vcs.credentials import Credentials, CredentialsError, credentials_for
from releaseboard.vcs.mirror import Mirror
from releaseboard.vcs.radar import merge_pairs
from releaseboard.vcs.results import (
    CommitInfo,
    Conflict,
    Identity,
    MergeResult,
    PushRejected,
    RefUpdate,
)

__all__ = [
    "LOCAL_TIMEOUT_SECONDS",
    "NETWORK_TIMEOUT_SECONDS",
    "CommandObserver",
    "CommitInfo",
    "Conflict",
    "Credentials",
    "CredentialsError",
    "GitError",
    "GitTimeout",
    "Identity",
    "InvalidRemoteURL",
    "MergeResult",
    "Mirror",
    "PushRejected",
    "RefUpdate",
    "check_branch_name",
    "check_remote_url",
    "credentials_for",
    "drop_inherited_git_environment",
    "ls_remote",
    "merge_pairs",
]
