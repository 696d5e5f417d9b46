"""The branch model, as data plus small pure functions. No Django, no I/O.

master holds production and changes only by promotion of a tested staging commit;
staging is copied from master to start a cycle and changes only by promotion of a
tested feature or hotfix branch; feature and hotfix branches are created from the
latest staging and promoted into it.
"""

from __future__ import annotations

from releaseboard.branching.model import (
    RULES,
    BranchKind,
    BranchNames,
    InvalidBranchName,
    Rule,
    can_create_from,
    can_promote,
    classify,
    full_name,
    validate_short_name,
)
from releaseboard.branching.refname import check_branch_name, git_accepts_branch_name
from releaseboard.branching.versions import Version, bump_for, latest_version, parse_tag

__all__ = [
    "RULES",
    "BranchKind",
    "BranchNames",
    "InvalidBranchName",
    "Rule",
    "Version",
    "bump_for",
    "can_create_from",
    "check_branch_name",
    "can_promote",
    "classify",
    "full_name",
    "git_accepts_branch_name",
    "latest_version",
    "parse_tag",
    "validate_short_name",
]
