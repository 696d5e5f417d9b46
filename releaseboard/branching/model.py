"""The rules table and branch-name checks."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class BranchKind(enum.StrEnum):
    MASTER = "master"
    STAGING = "staging"
    FEATURE = "feature"
    HOTFIX = "hotfix"


@dataclass(frozen=True)
class Rule:
    kind: BranchKind
    created_from: BranchKind | None  # None: the branch exists before Releaseboard
    promoted_to: BranchKind | None  # None: nothing is above it
    editable_by_developers: bool
    many_open: bool


# The whole model in one table; every check below reads it.
RULES: dict[BranchKind, Rule] = {
    BranchKind.MASTER: Rule(BranchKind.MASTER, None, None, False, False),
    BranchKind.STAGING: Rule(BranchKind.STAGING, BranchKind.MASTER, BranchKind.MASTER, False, False),
    BranchKind.FEATURE: Rule(BranchKind.FEATURE, BranchKind.STAGING, BranchKind.STAGING, True, True),
    BranchKind.HOTFIX: Rule(BranchKind.HOTFIX, BranchKind.STAGING, BranchKind.STAGING, True, True),
}

# Short names a developer may choose: lowercase letters, digits, ".", "_", "-", and "/"
# for grouping, starting with a letter or digit. Everything git itself refuses is
# refused again by refname.check_branch_name on the full name.
SHORT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")
MAX_SHORT_NAME = 100
RESERVED = {"head", "master", "main", "staging", "refs", "heads", "tags", "remotes"}


class InvalidBranchName(ValueError):
    """A proposed branch name that the model refuses; the message says why, for people."""


@dataclass(frozen=True)
class BranchNames:
    """A repository's branch names; teams may call master "main"."""

    master: str = "master"
    staging: str = "staging"
    feature_prefix: str = "feature/"
    hotfix_prefix: str = "hotfix/"

    def prefix(self, kind: BranchKind) -> str:
        if kind is BranchKind.FEATURE:
            return self.feature_prefix
        if kind is BranchKind.HOTFIX:
            return self.hotfix_prefix
        raise ValueError(f"{kind.value} branches have no prefix")


def classify(names: BranchNames, branch: str) -> BranchKind | None:
    """The kind of a branch by its full name, or None when the model does not manage it."""
    if branch == names.master:
        return BranchKind.MASTER
    if branch == names.staging:
        return BranchKind.STAGING
    for kind in (BranchKind.FEATURE, BranchKind.HOTFIX):
        prefix = names.prefix(kind)
        if branch.startswith(prefix) and len(branch) > len(prefix):
            return kind
    return None


def can_create_from(kind: BranchKind, source: BranchKind) -> bool:
    """Whether a branch of `kind` may be created from a branch of kind `source`."""
    return RULES[kind].created_from is source


def can_promote(source: BranchKind, target: BranchKind) -> bool:
    """Whether `source` may be promoted into `target`."""
    return RULES[source].promoted_to is target


def full_name(names: BranchNames, kind: BranchKind, short: str) -> str:
    """The full branch name for a short name, after validating it (raises InvalidBranchName).

    The caller also applies git's own rules to the full name (check_branch_name), since
    a team's prefix is part of it.
    """
    validate_short_name(short)
    return names.prefix(kind) + short


def validate_short_name(short: str) -> None:
    """Refuse a short branch name that is not plain, with a message that says how to fix it."""
    if not short:
        raise InvalidBranchName("Give the branch a name.")
    if len(short) > MAX_SHORT_NAME:
        raise InvalidBranchName(f"Branch names are at most {MAX_SHORT_NAME} characters.")
    if not SHORT_NAME.fullmatch(short):
        raise InvalidBranchName(
            "Use lowercase letters, digits, '.', '_' and '-' (and '/' to group), "
            "starting with a letter or digit, e.g. 'login-form'."
        )
    # git refuses a ".lock" ending on any part of the name, not only on the last.
    if (
        ".." in short
        or short.endswith((".", "/"))
        or "/." in short
        or any(part.endswith(".lock") for part in short.split("/"))
    ):
        raise InvalidBranchName(
            "Branch names may not contain '..', end in '.' or '/', or have a part ending in '.lock'."
        )
    if short.split("/")[0] in RESERVED:
        raise InvalidBranchName(f"'{short.split('/')[0]}' is reserved; choose another name.")
