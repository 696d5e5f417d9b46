"""Running a repository's build and tests on a commit: staging's head, or a promotion's
merge result (the exact commit that would land)."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from django.conf import settings

from releaseboard import sandbox, vcs
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs.execution import JobCancelled, JobContext, JobFailed
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases import hooks, services
from releaseboard.releases.models import (
    MergeCheck,
    Promotion,
    PromotionState,
    Repository,
    TestResult,
    TestRun,
)
from releaseboard.releases.runners.candidates import publish_candidate
from releaseboard.releases.runners.common import git_step, identity
from releaseboard.releases.runners.outcomes import fail_promotion, merge_message
from releaseboard.releases.runners.sync import refresh

# -- testing ------------------------------------------------------------------------------


def run_tests(
    ctx: JobContext,
    repository: Repository,
    mirror: vcs.Mirror,
    sha: str,
    promotion: Promotion | None = None,
    *,
    tree: str = "",
) -> TestRun:
    """Build and test `sha` in a worktree; record a TestRun against the commit and tree
    (`tree` when the caller just wrote the commit from it, else read from the commit).

    Raises JobFailed when a command fails (the TestRun is recorded first).
    """
    tree = tree or mirror.tree_of(sha)
    # Each job attempt gets its own HOME and TMPDIR, removed after, and its own worktree
    # directory: nothing a run leaves in HOME (caches, a planted config) reaches the next
    # job, and a retried job never shares a directory with an earlier attempt's test,
    # should that still run. Only a run that ended here gives its worktree back (the
    # sandbox has killed the command's tree), cleaned (checkout -f, clean -ffdx) by the
    # next job that takes it, which then writes only the files that differ.
    home = _attempt_dir(settings.WORK_DIR / "home" / str(repository.pk), ctx)
    worktrees = _attempt_dir(settings.WORK_DIR / "worktrees" / str(repository.pk), ctx)
    spares = settings.WORK_DIR / "worktree-spares" / str(repository.pk)
    (home / "tmp").mkdir(parents=True)
    commands = [
        ("Build", repository.build_command, JobReason.BUILD_FAILED),
        ("Test", repository.test_command, JobReason.TESTS_FAILED),
    ]
    ctx.section(f"Check out {sha[:10]}")
    with (
        contextlib.ExitStack() as cleanup,
        git_step(ctx, "check out the commit", mirror.checkout, worktrees, sha, spares) as path,
    ):
        cleanup.callback(shutil.rmtree, worktrees, ignore_errors=True)
        cleanup.callback(_give_back, mirror, Path(path), spares)
        cleanup.callback(shutil.rmtree, home, ignore_errors=True)
        for label, command, failure in commands:
            if not command:
                continue
            ctx.check_cancel()
            ctx.section(label)
            step = ctx.start_step(label, command)
            # minimal_env: an allowlist, so the worker's secrets (Django key, database and
            # broker URLs, remote credentials) never reach the repository's code.
            result = sandbox.run(
                sandbox.split_command(command),
                cwd=Path(path),
                env=sandbox.minimal_env(home, {"TMPDIR": str(home / "tmp"), hooks.JUNIT_ENV: str(home / "junit.xml")}),
                timeout=repository.test_timeout,
                on_output=ctx.log,
                should_cancel=ctx.cancel_requested,
                output_cap=settings.TEST_OUTPUT_CAP_BYTES,
            )
            ctx.finish_step(step, result.exit_code, result.outcome.value)
            hooks.tests_ran.notify(ctx, home / "junit.xml")  # read before HOME is removed
            if result.outcome is sandbox.Outcome.CANCELLED:
                ctx.raise_if_lost()
                raise JobCancelled()
            if not result.passed:
                reason = JobReason.TIMED_OUT if result.outcome is sandbox.Outcome.TIMED_OUT else failure
                summary = f"{label} failed: {result.message}"
                _record_test(ctx, repository, sha, tree, TestResult.FAILED, summary, promotion)
                raise JobFailed(reason, f"{summary}. The target branch was not changed.")
    return _record_test(ctx, repository, sha, tree, TestResult.PASSED, "Build and tests passed", promotion)


def _give_back(mirror: vcs.Mirror, path: Path, spares: Path) -> None:
    with contextlib.suppress(OSError, vcs.GitError):  # else it goes with the attempt's directory
        mirror.give_back(path, spares)


def _attempt_dir(root: Path, ctx: JobContext) -> Path:
    """root/<job>-<attempt>, empty; the directories of jobs that have ended without
    cleaning up (a killed worker) are removed. Those of this job's earlier attempts stay
    until it ends: a worker that lost the job may still be in there."""
    if root.is_dir():
        owners = {p: p.name.partition("-")[0] for p in root.iterdir()}
        ended = set(
            Job.objects.filter(
                pk__in=[int(j) for j in owners.values() if j.isdigit()], state__in=JobState.final()
            ).values_list("pk", flat=True)
        )
        for old, job_id in owners.items():
            if job_id.isdigit() and int(job_id) in ended:
                shutil.rmtree(old, ignore_errors=True)
    path = root / f"{ctx.job.pk}-{ctx.job.attempt}"
    shutil.rmtree(path, ignore_errors=True)
    return path


def _record_test(
    ctx: JobContext, repository: Repository, sha: str, tree: str, result: str, summary: str, promotion: Promotion | None
) -> TestRun:
    with ctx.atomic():
        run = TestRun.objects.create(
            repository=repository,
            commit_sha=sha,
            tree_sha=tree,
            result=result,
            summary=summary,
            promotion=promotion,
            job_id=ctx.job.pk,
        )
        audit_record(
            f"test.{result}",
            actor=None,
            repository=repository,
            obj=promotion or repository,
            to_sha=sha,
            result=result,
            message=summary,
            details={"tree": tree, "job": ctx.job.pk},
        )
    return run


def run_test_staging(ctx: JobContext) -> str:
    repository = Repository.objects.get(pk=ctx.params["repository"])
    mirror, heads = refresh(ctx, repository)
    staging = heads.get(repository.staging_branch)
    if not staging:
        raise JobFailed(JobReason.NOTHING_TO_DO, f"{repository.staging_branch} does not exist; nothing to test.")
    run_tests(ctx, repository, mirror, staging)
    return f"{repository.staging_branch} {staging[:10]} passed."


def run_test_promotion(ctx: JobContext) -> str:
    promotion = Promotion.objects.select_related("branch", "repository", "requested_by").get(pk=ctx.params["promotion"])
    repository, branch = promotion.repository, promotion.branch
    mirror, heads = refresh(ctx, repository)
    staging = heads.get(repository.staging_branch)
    if not staging:
        raise JobFailed(JobReason.REFUSED, f"{repository.staging_branch} does not exist; copy master to staging first.")
    # A re-test on the way to staging merges the branch commit that was reviewed and
    # tested, never whatever the branch points to now.
    branch_sha = (
        promotion.branch_sha if ctx.params.get("then_promote") and promotion.branch_sha else heads.get(branch.name)
    )
    if not branch_sha:
        raise JobFailed(JobReason.REFUSED, f"{branch.name} no longer exists on the remote.")
    ctx.section(f"Merge {branch.name} {branch_sha[:10]} into {repository.staging_branch} {staging[:10]}")
    if mirror.is_ancestor(branch_sha, staging):
        _record_merge(ctx, promotion, MergeCheck.NOTHING, staging, branch_sha)
        raise JobFailed(
            JobReason.NOTHING_TO_PROMOTE,
            f"Nothing to promote: every commit of {branch.name} is already on {repository.staging_branch}. "
            "Push your work to the branch, then run the tests again.",
        )
    merge = git_step(ctx, "merge", mirror.merge, staging, branch_sha)
    if not merge.clean:
        files = [f"{c.path} ({c.kind})" for c in merge.conflicts]
        _record_merge(ctx, promotion, MergeCheck.CONFLICT, staging, branch_sha, conflicts=files)
        hooks.merge_checked.notify(ctx, mirror, promotion, staging, branch_sha, merge=merge)
        raise JobFailed(
            JobReason.MERGE_CONFLICT,
            f"{branch.name} conflicts with {repository.staging_branch} in: {', '.join(files)}. "
            f"Merge {repository.staging_branch} into your branch, resolve, push, then run the tests again.",
        )
    timestamp = int(time.time())
    merge_sha = mirror.commit_tree(
        merge.tree,
        [staging, branch_sha],
        merge_message(promotion),
        author=identity(),
        committer=identity(),
        timestamp=timestamp,
    )
    _record_merge(
        ctx, promotion, MergeCheck.CLEAN, staging, branch_sha, merge_sha=merge_sha, tree=merge.tree, timestamp=timestamp
    )
    ctx.log(f"Merge result {merge_sha} (tree {merge.tree})\n")
    hooks.merge_checked.notify(ctx, mirror, promotion, staging, branch_sha, merge_sha=merge_sha)
    run_tests(ctx, repository, mirror, merge_sha, promotion, tree=merge.tree)
    publish_candidate(ctx, repository, mirror, promotion)
    if ctx.params.get("then_promote"):
        with ctx.atomic():
            if Promotion.objects.filter(pk=promotion.pk, state=PromotionState.PROMOTING).exists():
                services.promote_job(promotion, ctx.job.created_by)
    return f"The merge of {branch.name} into {repository.staging_branch} passed its tests."


def _record_merge(
    ctx: JobContext,
    promotion: Promotion,
    check: str,
    staging: str,
    branch_sha: str,
    *,
    conflicts: list[str] | None = None,
    merge_sha: str = "",
    tree: str = "",
    timestamp: int | None = None,
) -> None:
    values = {
        "merge_check": check,
        "conflict_files": conflicts or [],
        "staging_sha": staging,
        "branch_sha": branch_sha,
        "merge_sha": merge_sha,
        "merge_tree": tree,
        "merge_timestamp": timestamp,
    }
    with ctx.atomic():
        Promotion.objects.filter(pk=promotion.pk).update(**values)
        for name, value in values.items():  # what was just written, without reading the row again
            setattr(promotion, name, value)
        audit_record(
            f"promotion.merge_{check}",
            actor=None,
            repository=promotion.repository,
            obj=promotion,
            from_sha=staging,
            to_sha=merge_sha or branch_sha,
            result=check,
            details={"conflicts": conflicts or [], "branch_sha": branch_sha},
        )


def on_test_promotion_final(job: Job) -> None:
    if job.state == JobState.SUCCEEDED or not job.params.get("then_promote"):
        return
    fail_promotion(job)
