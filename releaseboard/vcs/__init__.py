"""All of Releaseboard's git: a persistent bare mirror per repository, merges computed
with merge-tree, compare-and-swap pushes, tags, worktrees for test runs, ls-remote.

This is the only package that runs git (as argv lists; GitPython is not used). No Django here.
"""

from __future__ import annotations

from releaseboard.vcs.commands import (
    CommandObserver,
    GitError,
    InvalidRemoteURL,
    check_branch_name,
    check_remote_url,
    ls_remote,
)
from releaseboard.vcs.credentials import Credentials, CredentialsError, credentials_for
from releaseboard.vcs.mirror import (
    CommitInfo,
    Conflict,
    Identity,
    MergeResult,
    Mirror,
    PushRejected,
    RefUpdate,
)
from releaseboard.vcs.radar import merge_pairs

__all__ = [
    "CommandObserver",
    "CommitInfo",
    "Conflict",
    "Credentials",
    "CredentialsError",
    "GitError",
    "Identity",
    "InvalidRemoteURL",
    "MergeResult",
    "Mirror",
    "PushRejected",
    "RefUpdate",
    "check_branch_name",
    "check_remote_url",
    "credentials_for",
    "ls_remote",
    "merge_pairs",
]
