"""One runner per job kind, step by step, a module per kind of work. Runners use vcs for
git and sandbox for the repository's commands; every domain change goes through
ctx.atomic() (lease-checked) with its audit event."""

from __future__ import annotations

from releaseboard.jobs import registry
from releaseboard.releases.runners.branches import on_create_branch_final, run_create_branch, run_update_branch
from releaseboard.releases.runners.common import git_step, mirror_for
from releaseboard.releases.runners.promote import on_promote_final, run_promote
from releaseboard.releases.runners.release import on_release_final, run_copy_master, run_release
from releaseboard.releases.runners.sync import run_sync
from releaseboard.releases.runners.testing import on_test_promotion_final, run_test_promotion, run_test_staging

__all__ = ["git_step", "mirror_for", "register_all"]


def register_all() -> None:
    for kind in (
        registry.JobKind("sync", run_sync, "git"),
        registry.JobKind("create_branch", run_create_branch, "git", on_create_branch_final),
        registry.JobKind("test_promotion", run_test_promotion, "tests", on_test_promotion_final),
        registry.JobKind("test_staging", run_test_staging, "tests"),
        registry.JobKind("promote", run_promote, "git", on_promote_final),
        registry.JobKind("release", run_release, "git", on_release_final),
        registry.JobKind("copy_master", run_copy_master, "git"),
        registry.JobKind("update_branch", run_update_branch, "git"),
    ):
        registry.register(kind)
