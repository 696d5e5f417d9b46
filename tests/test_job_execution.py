"""How a running job records what it does."""

from __future__ import annotations


def test_a_git_step_is_named_by_its_subcommand_past_its_options():
    from releaseboard.jobs.execution import _git_step_name

    assert (
        _git_step_name(["git", "-c", "core.hooksPath=/dev/null", "-C", "/m.git", "push", "--porcelain"]) == "git push"
    )
    assert _git_step_name(["git", "-C", "/m.git", "fetch", "origin"]) == "git fetch"
