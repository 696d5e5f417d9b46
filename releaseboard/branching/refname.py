"""git's branch-name rules in pure Python, so no request has to run git to check a name.

`git_accepts_branch_name` is `git check-ref-format --branch NAME` run outside any
repository (git's refs.c: check_refname_format on "refs/heads/NAME"); a test compares it
with real git over thousands of generated names. `check_branch_name` adds the model's
own refusals on top.
"""

from __future__ import annotations

# Characters git refuses anywhere in a ref name: ASCII control characters, space and
# DEL, and those with a meaning in revision syntax or refspecs. "*" is only allowed in
# refspec patterns, which a branch name never is.
_FORBIDDEN = frozenset(chr(c) for c in range(0x20)) | frozenset(" \x7f~^:?*[\\")


def _component_ok(component: str) -> bool:
    """One part between slashes: not empty, not starting with ".", not ending in ".lock"."""
    return bool(component) and not component.startswith(".") and not component.endswith(".lock")


def git_accepts_branch_name(name: str) -> bool:
    """Whether `git check-ref-format --branch name` accepts the name (run outside a
    repository, where git does not expand "@{-1}" and the like)."""
    # Branch names may not look like an option, and HEAD is not a branch.
    if not name or name.startswith("-") or name == "HEAD":
        return False
    if any(c in _FORBIDDEN for c in name) or ".." in name or "@{" in name:
        return False
    # The whole ref must not end in "." (a ".lock" or "/" ending fails per component).
    if name.endswith("."):
        return False
    return all(_component_ok(part) for part in name.split("/"))


def check_branch_name(name: str) -> bool:
    """Whether Releaseboard will use `name` as a branch name: git accepts it and so does
    the model.

    On top of git's rules: no part may start with "-" (such names look like options to
    the tools people run on them, and pushes refuse them), and a lone "@" is refused
    because inside a repository git reads it as HEAD.
    """
    if not git_accepts_branch_name(name) or name == "@":
        return False
    return not any(part.startswith("-") for part in name.split("/"))
