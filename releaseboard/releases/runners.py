"""One runner per job kind, step by step. Runners use vcs for git and sandbox for the
repository's commands; every domain change goes through ctx.atomic() (lease-checked)
with its audit event."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from releaseboard import branching, sandbox, vcs
from releaseboard.audit.models import AuditEvent
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs import registry
from releaseboard.jobs.execution import JobCancelled, JobContext, JobFailed, JobWaiting
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases import derived, hooks, intelligence, moves, selectors, services
from releaseboard.releases.models import (
    Branch,
    BranchState,
    ExpectedMove,
    MergeCheck,
    Promotion,
    PromotionState,
    Release,
    ReleaseState,
    Repository,
    TestResult,
    TestRun,
)
from releaseboard.review.junit import ENV_NAME as JUNIT_ENV
from releaseboard.review.reports import record_test_report
from releaseboard.review.service import record_review


def identity() -> vcs.Identity:
    return vcs.Identity(settings.GIT_COMMITTER_NAME, settings.GIT_COMMITTER_EMAIL)


def remote_credentials(repository: Repository, observer: object = None) -> vcs.Credentials | None:
    """The repository's remote credentials from settings.CREDENTIALS_FILE, or None.

    When a job is watching (observer is its JobContext), every form of the secret is
    registered with it first, so the job log masks it wherever git might echo it.
    """
    try:
        credentials = vcs.credentials_for(repository.remote_url, settings.CREDENTIALS_FILE or None)
    except vcs.CredentialsError as exc:
        raise JobFailed(JobReason.GIT_ERROR, f"{exc} Ask an admin to fix the worker's credentials file.") from None
    if credentials and isinstance(observer, JobContext):
        observer.secrets.extend(s for s in credentials.secrets() if s not in observer.secrets)
    return credentials


def mirror_for(repository: Repository, observer: vcs.CommandObserver | None = None) -> vcs.Mirror:
    """This worker's persistent bare mirror of the repository, with its remote credentials."""
    return vcs.Mirror(
        settings.WORK_DIR / "mirrors" / f"{repository.pk}.git",
        repository.remote_url,
        allow_local=settings.ALLOW_LOCAL_REPOSITORIES,
        observer=observer,
        credentials=remote_credentials(repository, observer),
        network_timeout=settings.GIT_NETWORK_TIMEOUT_SECONDS,
        local_timeout=settings.GIT_LOCAL_TIMEOUT_SECONDS,
    )


def _git(ctx: JobContext, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except vcs.GitTimeout as exc:
        raise JobFailed(
            JobReason.TIMED_OUT,
            f"Could not {what}: {exc}. Check that the remote is up and reachable from the worker, then try again.",
        ) from None
    except vcs.GitError as exc:
        raise JobFailed(
            JobReason.GIT_ERROR, f"Could not {what}: {exc}. Check the remote URL and the worker's access."
        ) from None


class PushOutcomeUnknown(Exception):
    """The push failed in a way that does not say whether the remote took it."""

    def __init__(self, message: str, reason: str = JobReason.GIT_ERROR) -> None:
        super().__init__(message)
        self.reason = reason  # TIMED_OUT when the remote did not answer in time


def push(ctx: JobContext, mirror: vcs.Mirror, updates: list[vcs.RefUpdate], *, atomic: bool = False) -> None:
    """Push with compare-and-swap, only while this worker still holds the job.

    Raises PushRejected when the remote refused (it moved, or the name exists), and
    PushOutcomeUnknown when git failed otherwise (e.g. the connection broke): then the
    caller reads the remote to settle it, and never pushes again blindly.
    """
    ctx.checkpoint("before_push")
    # The last look before the effect: a cancel that came while this worker was slow to
    # get here still stops it (the compare-and-swap guards only against other writers).
    ctx.check_cancel()
    ctx.assert_lease()
    try:
        mirror.push(updates, atomic=atomic)
    except vcs.PushRejected:
        raise
    except vcs.GitTimeout as exc:
        raise PushOutcomeUnknown(str(exc), JobReason.TIMED_OUT) from None
    except vcs.GitError as exc:
        raise PushOutcomeUnknown(str(exc)) from None
    ctx.checkpoint("after_push")


def remote_refs(ctx: JobContext, repository: Repository) -> dict[str, str] | None:
    """The remote's refs read afresh, or None when it cannot be reached."""
    try:
        return mirror_for(repository, ctx).ls_remote()
    except vcs.GitError:
        return None


def candidate_ref(promotion: Promotion) -> str:
    return f"refs/releaseboard/candidates/{promotion.pk}"


def publish_candidate(ctx: JobContext, repository: Repository, mirror: vcs.Mirror, promotion: Promotion) -> None:
    """Push the tested merge commit where external CI can build that exact commit, when a
    repository requires a status on it. Compare-and-swap against what the remote holds."""
    if not hooks.candidates_wanted.any(repository):
        return
    ref = candidate_ref(promotion)
    current = (remote_refs(ctx, repository) or {}).get(ref, "")
    if current == promotion.merge_sha:
        return
    ctx.section(f"Push the merge commit {promotion.merge_sha[:10]} to {ref} for external CI")
    _git(ctx, "push the candidate", mirror.push, [vcs.RefUpdate(ref, promotion.merge_sha, current)])


def prune_candidates(ctx: JobContext, repository: Repository, mirror: vcs.Mirror) -> None:
    """Delete the candidate refs of promotions that are no longer waiting to land."""
    refs = {r: sha for r, sha in (remote_refs(ctx, repository) or {}).items() if r.startswith(CANDIDATES)}
    if not refs:
        return
    ids = {int(r.rsplit("/", 1)[1]): r for r in refs}
    waiting = set(
        Promotion.objects.filter(
            pk__in=ids, repository=repository, state__in=[PromotionState.OPEN, PromotionState.PROMOTING]
        ).values_list("pk", flat=True)
    )
    for pk, ref in sorted(ids.items()):
        if pk not in waiting:
            ctx.log(f"Delete {ref}: promotion #{pk} no longer waits to land.\n")
            with contextlib.suppress(vcs.GitError):  # moved meanwhile: the next sync looks again
                mirror.delete_candidate(ref, refs[ref])


CANDIDATES = "refs/releaseboard/candidates/"


UNKNOWN_OUTCOME = (
    "The push failed ({error}) and the remote cannot be read now. Whether it landed is settled by "
    "the next sync, which reads the remote; nothing is pushed again blindly."
)


# -- sync --------------------------------------------------------------------------------


def refresh(ctx: JobContext, repository: Repository) -> tuple[vcs.Mirror, dict[str, str]]:
    """Fetch the remote and record its heads: done before every job (the remote is the truth)."""
    ctx.section(f"Fetch {repository.remote_url}")
    mirror = mirror_for(repository, ctx)
    # Read before the fetch: a head recorded after this was seen by a fetch at least as new.
    recorded = moves.recorded_heads(repository)
    _git(ctx, "fetch from the remote", mirror.fetch)
    heads = mirror.heads()
    ctx.checkpoint("after_fetch")
    record_heads(ctx, repository, mirror, heads, recorded)
    return mirror, heads


def record_heads(
    ctx: JobContext,
    repository: Repository,
    mirror: vcs.Mirror,
    heads: dict[str, str],
    recorded: dict[str, str] | None = None,
) -> None:
    """Record the remote's heads, raise drift alarms for master/staging moves Releaseboard
    did not make, and bring the derived facts up to date. `recorded` is master/staging as
    read before the fetch (moves.recorded_heads)."""
    names = repository.names
    protected = (names.master, names.staging)
    if recorded is None:
        recorded = moves.recorded_heads(repository)
    staging = heads.get(names.staging)
    summary = derived.staging_summary(mirror, repository, heads)
    latest = branching.latest_version(mirror.tags())
    changes: dict[str, list[str]] = {"new": [], "moved": [], "gone": []}
    # Invariant 6: what the fetch shows is compared with the heads recorded so far, before
    # they are updated (policy raises drift alarms from it, inside the transaction below).
    observed = hooks.heads_fetched.notify(repository, mirror, heads, recorded)
    copy = _landed_copy(repository, recorded, heads)
    with ctx.atomic():
        known = {b.name: b for b in Branch.objects.select_for_update().filter(repository=repository)}
        # Compare-and-swap on the recorded master and staging: if another job recorded one
        # since this job read it, that job saw a remote at least as new as this fetch, so
        # this job neither reports nor writes that branch (no alarm from a stale view).
        now = {
            n: (b.head_sha if b.state == BranchState.ACTIVE else "")
            for n, b in known.items()
            if n in protected and b.state != BranchState.REQUESTED
        }
        stale = {n for n in protected if now.get(n) != recorded.get(n)}
        for write in observed:
            write(stale)
        for name, sha in heads.items():
            kind = branching.classify(names, name)
            if kind is None or name in stale:
                continue
            branch = known.get(name)
            if branch is None:
                Branch.objects.create(repository=repository, name=name, kind=kind.value, head_sha=sha)
                changes["new"].append(f"{name} {sha[:10]}")
            elif branch.state == BranchState.REQUESTED:
                continue  # its create_branch job settles it
            elif branch.head_sha != sha or branch.state in (BranchState.GONE, BranchState.FAILED):
                changes["moved"].append(f"{name} {branch.head_sha[:10]}..{sha[:10]}")
                branch.head_sha = sha
                # A promoted branch that gets new commits is in play again.
                if branch.state in (BranchState.GONE, BranchState.FAILED, BranchState.PROMOTED):
                    branch.state = BranchState.ACTIVE
                branch.save(update_fields=["head_sha", "state", "updated_at"])
            else:
                continue
            if name in protected:
                moves.settle(repository, name, sha)
        for name, branch in known.items():
            if name not in heads and name not in stale and branch.state in (BranchState.ACTIVE, BranchState.PROMOTED):
                branch.state = BranchState.GONE
                branch.save(update_fields=["state", "updated_at"])
                changes["gone"].append(name)
                if name in protected:
                    moves.settle(repository, name, "")
        Repository.objects.filter(pk=repository.pk).update(
            synced_at=timezone.now(), sync_error="", latest_version=str(latest)
        )
        if not stale:
            derived.save_summary(repository, summary)
        repository.refresh_from_db()
        if copy is not None and names.staging not in stale:
            # A copy of master landed and its job has not recorded it (still running, or
            # died after the push): record it as that job would, not as a removal.
            derived.record_copy(
                repository, copy.job.created_by if copy.job else None, copy.from_sha, copy.to_sha, reconciled=True
            )
        if staging and names.staging not in stale:
            _reconcile_promotions(mirror, repository, staging)
            derived.remove_vanished(mirror, repository, staging, summary)
        if any(changes.values()):
            audit_record(
                "repository.synced",
                actor=None,
                repository=repository,
                obj=repository,
                details={k: v for k, v in changes.items() if v},
            )
        if staging:
            derived.ensure_staging_tested(repository, staging)
    intelligence.record(ctx, repository, mirror, heads)
    for key, values in changes.items():
        for value in values:
            ctx.log(f"{key}: {value}\n")
    hooks.heads_recorded.notify(repository, mirror, ctx.log)


def _landed_copy(repository: Repository, recorded: dict[str, str], heads: dict[str, str]) -> ExpectedMove | None:
    """The pending "Copy master to staging" move this fetch shows landed, if any."""
    name = repository.staging_branch
    if name not in recorded or recorded[name] == heads.get(name, ""):
        return None
    move = moves.pending_move(repository, name, recorded[name], heads.get(name, ""))
    return move if move is not None and move.job is not None and move.job.kind == "copy_master" else None


def _reconcile_promotions(mirror: vcs.Mirror, repository: Repository, staging: str) -> None:
    """Promotions whose tested merge commit is on the remote's staging have landed, even
    if the job that pushed it died before it could record so (the remote is the truth)."""
    pending = Promotion.objects.filter(
        repository=repository, state__in=[PromotionState.PROMOTING, PromotionState.FAILED]
    ).exclude(merge_sha="")
    for promotion in pending:
        if mirror.has_commit(promotion.merge_sha) and mirror.is_ancestor(promotion.merge_sha, staging):
            record_promoted(promotion, before=promotion.staging_sha, action="promotion.reconciled")


def run_sync(ctx: JobContext) -> str:
    repository = Repository.objects.get(pk=ctx.params["repository"])
    mirror, heads = refresh(ctx, repository)
    if hooks.candidates_wanted.any(repository):
        prune_candidates(ctx, repository, mirror)
    managed = [n for n in heads if branching.classify(repository.names, n) is not None]
    return f"Refreshed {repository.name}: {len(managed)} branches."


# -- branches ----------------------------------------------------------------------------


def run_create_branch(ctx: JobContext) -> str:
    branch = Branch.objects.select_related("repository").get(pk=ctx.params["branch"])
    repository = branch.repository
    with ctx.hold(repository.lock_key):
        mirror, heads = refresh(ctx, repository)
        staging = heads.get(repository.staging_branch)
        if not staging:
            raise JobFailed(
                JobReason.REFUSED,
                f"{repository.staging_branch} does not exist yet. A release manager "
                "can use \u201cCopy master to staging\u201d to start a cycle; then request the branch again.",
            )
        existing = heads.get(branch.name)
        if existing and existing != staging:
            raise JobFailed(
                JobReason.BRANCH_EXISTS, f"{branch.name} already exists on the remote; request another name."
            )
        if not existing:
            ctx.section(f"Create {branch.name} at {repository.staging_branch} {staging[:10]}")
            try:
                # expected "" : created only if the name does not exist on the remote yet.
                push(ctx, mirror, [vcs.RefUpdate(f"refs/heads/{branch.name}", staging, "")])
            except vcs.PushRejected:
                raise JobFailed(
                    JobReason.BRANCH_EXISTS, f"{branch.name} appeared on the remote meanwhile; request another name."
                ) from None
            except PushOutcomeUnknown as exc:
                raise JobFailed(exc.reason, UNKNOWN_OUTCOME.format(error=exc)) from None
        with ctx.atomic():
            Branch.objects.filter(pk=branch.pk).update(
                state=BranchState.ACTIVE, head_sha=staging, base_sha=staging, updated_at=timezone.now()
            )
            audit_record("branch.created", actor=ctx.job.created_by, repository=repository, obj=branch, to_sha=staging)
    return f"Created {branch.name} at {repository.staging_branch} {staging[:10]}."


def on_create_branch_final(job: Job) -> None:
    if job.state == JobState.SUCCEEDED:
        return
    branch = Branch.objects.filter(pk=job.params.get("branch"), state=BranchState.REQUESTED).first()
    if branch is not None:
        branch.state = BranchState.FAILED
        branch.save(update_fields=["state", "updated_at"])
        audit_record(
            "branch.failed",
            actor=None,
            repository=branch.repository,
            obj=branch,
            result=job.reason,
            message=job.message,
        )


# -- testing ------------------------------------------------------------------------------


def run_tests(
    ctx: JobContext, repository: Repository, mirror: vcs.Mirror, sha: str, promotion: Promotion | None = None
) -> TestRun:
    """Build and test `sha` in a worktree; record a TestRun against the commit and tree.

    Raises JobFailed when a command fails (the TestRun is recorded first).
    """
    tree = mirror.tree_of(sha)
    # Each job attempt gets its own HOME, TMPDIR and worktree, removed after: nothing a
    # run leaves there (caches, a planted config) reaches the next job, and a retried job
    # never shares a directory with an earlier attempt's test, should that still run.
    home = _attempt_dir(settings.WORK_DIR / "home" / str(repository.pk), ctx)
    worktrees = _attempt_dir(settings.WORK_DIR / "worktrees" / str(repository.pk), ctx)
    (home / "tmp").mkdir(parents=True)
    commands = [
        ("Build", repository.build_command, JobReason.BUILD_FAILED),
        ("Test", repository.test_command, JobReason.TESTS_FAILED),
    ]
    ctx.section(f"Check out {sha[:10]}")
    with (
        contextlib.ExitStack() as cleanup,
        _git(ctx, "check out the commit", mirror.checkout, worktrees, sha) as path,
    ):
        cleanup.callback(shutil.rmtree, worktrees, ignore_errors=True)
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
                env=sandbox.minimal_env(home, {"TMPDIR": str(home / "tmp"), JUNIT_ENV: str(home / "junit.xml")}),
                timeout=repository.test_timeout,
                on_output=ctx.log,
                should_cancel=ctx.cancel_requested,
                output_cap=settings.TEST_OUTPUT_CAP_BYTES,
            )
            ctx.finish_step(step, result.exit_code, result.outcome.value)
            record_test_report(ctx, home / "junit.xml")  # read before HOME is removed
            if result.outcome is sandbox.Outcome.CANCELLED:
                ctx.raise_if_lost()
                raise JobCancelled()
            if not result.passed:
                reason = JobReason.TIMED_OUT if result.outcome is sandbox.Outcome.TIMED_OUT else failure
                summary = f"{label} failed: {result.message}"
                _record_test(ctx, repository, sha, tree, TestResult.FAILED, summary, promotion)
                raise JobFailed(reason, f"{summary}. The target branch was not changed.")
    return _record_test(ctx, repository, sha, tree, TestResult.PASSED, "Build and tests passed", promotion)


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


def merge_message(promotion: Promotion) -> str:
    requester = promotion.requested_by.get_username() if promotion.requested_by else "unknown"
    body = f"\n\n{promotion.description.strip()}" if promotion.description.strip() else ""
    return (
        f"Promote {promotion.branch.name} to {promotion.repository.staging_branch} (#{promotion.pk})\n\n"
        f"{promotion.title}{body}\n\nRequested-by: {requester}\n{promotion.trailer}\n"
    )


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
    merge = _git(ctx, "merge", mirror.merge, staging, branch_sha)
    if not merge.clean:
        files = [f"{c.path} ({c.kind})" for c in merge.conflicts]
        _record_merge(ctx, promotion, MergeCheck.CONFLICT, staging, branch_sha, conflicts=files)
        record_review(ctx, mirror, promotion, staging, branch_sha, merge=merge)
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
    record_review(ctx, mirror, promotion, staging, branch_sha, merge_sha=merge_sha)
    run_tests(ctx, repository, mirror, merge_sha, promotion)
    promotion.refresh_from_db()
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
    with ctx.atomic():
        Promotion.objects.filter(pk=promotion.pk).update(
            merge_check=check,
            conflict_files=conflicts or [],
            staging_sha=staging,
            branch_sha=branch_sha,
            merge_sha=merge_sha,
            merge_tree=tree,
            merge_timestamp=timestamp,
        )
        promotion.refresh_from_db()
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
    _fail_promotion(job)


# -- promotion to staging ----------------------------------------------------------------


def _gates(ctx: JobContext, verdict: hooks.Verdict) -> None:
    """Act on a check point's verdict: refuse, or wait without holding a worker."""
    if isinstance(verdict, hooks.Stop):
        raise JobFailed(JobReason.REFUSED, verdict.message)
    if isinstance(verdict, hooks.Wait):
        raise JobWaiting(verdict.message, verdict.retry_in)


def run_promote(ctx: JobContext) -> str:
    promotion = Promotion.objects.select_related("branch", "repository", "requested_by").get(pk=ctx.params["promotion"])
    repository = promotion.repository
    # Required CI statuses first: a promotion waiting for them holds neither a worker nor the lease.
    _gates(ctx, hooks.before_promote.ask(promotion, since=ctx.job.created_at))
    with ctx.hold(repository.lock_key):
        mirror, heads = refresh(ctx, repository)
        staging = heads.get(repository.staging_branch, "")
        if (
            promotion.merge_sha
            and staging
            and mirror.has_commit(promotion.merge_sha)
            and mirror.is_ancestor(promotion.merge_sha, staging)
        ):
            # It landed already (an earlier attempt pushed, then its worker died).
            return _mark_promoted(ctx, promotion, promotion.staging_sha, mirror, {**heads})
        if staging != promotion.staging_sha:
            return _retest(
                ctx,
                promotion,
                f"{repository.staging_branch} moved since the test "
                f"({promotion.staging_sha[:10]} \u2192 {staging[:10]})",
            )
        if not selectors.has_passing_test(repository, promotion.merge_sha):
            raise JobFailed(JobReason.REFUSED, "The merge result has no passing test; run the tests again.")
        if not mirror.has_commit(promotion.merge_sha):
            # Another worker made the merge commit; its inputs rebuild the identical commit.
            rebuilt = mirror.commit_tree(
                promotion.merge_tree,
                [promotion.staging_sha, promotion.branch_sha],
                merge_message(promotion),
                author=identity(),
                committer=identity(),
                timestamp=promotion.merge_timestamp or 0,
            )
            if rebuilt != promotion.merge_sha:
                raise JobFailed(JobReason.GIT_ERROR, "Could not rebuild the tested merge commit; run the tests again.")
        # A drift alarm, the lock, a freeze window or a red CI status since it was queued.
        _gates(ctx, hooks.before_promote.ask(promotion, since=ctx.job.created_at))
        ctx.section(f"Push {promotion.merge_sha[:10]} to {repository.staging_branch} (expecting {staging[:10]})")
        move = expect_move(ctx, repository, repository.staging_branch, staging, promotion.merge_sha)
        try:
            push(ctx, mirror, [vcs.RefUpdate(f"refs/heads/{repository.staging_branch}", promotion.merge_sha, staging)])
        except vcs.PushRejected as exc:
            moves.drop(move)
            return _retest(ctx, promotion, f"{repository.staging_branch} moved during the promotion ({exc})")
        except PushOutcomeUnknown as exc:
            refs = remote_refs(ctx, repository)
            if refs is None:
                raise JobFailed(exc.reason, UNKNOWN_OUTCOME.format(error=exc)) from None
            if refs.get(f"refs/heads/{repository.staging_branch}") != promotion.merge_sha:
                raise JobFailed(
                    exc.reason,
                    f"The push failed ({exc}); {repository.staging_branch} is "
                    "unchanged on the remote. Click \u201cPromote to staging\u201d again.",
                ) from None
        if hooks.candidates_wanted.any(repository):  # landed: CI needs the candidate ref no more
            with contextlib.suppress(vcs.GitError):  # else the next sync deletes it
                mirror.delete_candidate(candidate_ref(promotion), promotion.merge_sha)
        return _mark_promoted(
            ctx, promotion, staging, mirror, {**heads, repository.staging_branch: promotion.merge_sha}
        )


def _retest(ctx: JobContext, promotion: Promotion, why: str) -> str:
    if promotion.retests >= settings.PROMOTION_MAX_RETESTS:
        raise JobFailed(
            JobReason.TARGET_MOVED,
            f"{why}, and it kept moving: tried {promotion.retests} times. "
            "Staging is unchanged by this promotion; click \u201cPromote to staging\u201d again when it is quiet.",
        )
    with ctx.atomic():
        Promotion.objects.filter(pk=promotion.pk).update(retests=promotion.retests + 1)
        audit_record(
            "promotion.retest_scheduled", actor=None, repository=promotion.repository, obj=promotion, message=why
        )
        services._test_promotion_job(promotion, ctx.job.created_by, then_promote=True)
    return f"{why}: merging and testing again before promoting."


def expect_move(ctx: JobContext, repository: Repository, name: str, old: str, new: str) -> ExpectedMove:
    """Write the move this job is about to push, so the drift check knows it as ours."""
    with ctx.atomic():
        return moves.expect(repository, name, old, new, ctx.job)


def _mark_promoted(
    ctx: JobContext, promotion: Promotion, before: str, mirror: vcs.Mirror, heads: dict[str, str]
) -> str:
    repository = promotion.repository
    staging_head = heads[repository.staging_branch]
    with ctx.atomic():
        Branch.objects.filter(repository=repository, name=repository.staging_branch).update(head_sha=staging_head)
        moves.settle(repository, repository.staging_branch, staging_head)
        record_promoted(promotion, before=before)
    derived.after_move(ctx, repository, mirror, heads, repository.staging_branch)
    return f"{promotion.branch.name} is on {repository.staging_branch} as {promotion.merge_sha[:10]}."


def record_promoted(promotion: Promotion, *, before: str, action: str = "promotion.promoted") -> bool:
    """Mark a landed promotion, once: a reconciling sync and the promote job may both
    see it land, and only the first writes the change and its audit event."""
    changed = (
        Promotion.objects.filter(pk=promotion.pk)
        .exclude(state=PromotionState.PROMOTED)
        .update(
            state=PromotionState.PROMOTED,
            promoted_sha=promotion.merge_sha,
            promoted_at=timezone.now(),
            state_message="",
        )
    )
    if not changed:
        return False
    Branch.objects.filter(pk=promotion.branch_id).update(state=BranchState.PROMOTED)
    audit_record(
        action,
        actor=promotion.promoted_by,
        repository=promotion.repository,
        obj=promotion,
        from_sha=before,
        to_sha=promotion.merge_sha,
    )
    return True


def _fail_promotion(job: Job) -> None:
    promotion = Promotion.objects.filter(pk=job.params.get("promotion"), state=PromotionState.PROMOTING).first()
    if promotion is not None:
        promotion.state = PromotionState.FAILED
        promotion.state_message = job.message
        promotion.save(update_fields=["state", "state_message"])
        audit_record(
            "promotion.failed",
            actor=None,
            repository=promotion.repository,
            obj=promotion,
            result=job.reason,
            message=job.message[:1000],
        )


def on_promote_final(job: Job) -> None:
    if job.state != JobState.SUCCEEDED:
        _fail_promotion(job)


# -- master ------------------------------------------------------------------------------


def run_release(ctx: JobContext) -> str:
    release = Release.objects.select_related("repository").get(pk=ctx.params["release"])
    repository = release.repository
    with ctx.hold(repository.lock_key):
        mirror, heads = refresh(ctx, repository)
        master = heads.get(repository.master_branch, "")
        if master == release.sha and mirror.resolve(f"refs/tags/{release.tag}") == release.sha:
            return _mark_released(ctx, release, mirror, heads)  # an earlier attempt pushed already
        if master != release.previous_master_sha:
            raise JobFailed(
                JobReason.TARGET_MOVED,
                f"{repository.master_branch} moved since the preview "
                f"({release.previous_master_sha[:10]} \u2192 {master[:10]}). Open \u201cPromote to master\u201d again.",
            )
        if not mirror.is_ancestor(master, release.sha):
            raise JobFailed(
                JobReason.REFUSED,
                f"{repository.master_branch} is not an ancestor of the staging commit, "
                "so master cannot fast-forward: someone changed master outside the release process. "
                "Copy master to staging and promote the branches again.",
            )
        if not selectors.has_passing_test(repository, release.sha):
            raise JobFailed(
                JobReason.REFUSED, f"{release.sha[:10]} has no passing test; run \u201cTest staging\u201d first."
            )
        if release.tag in mirror.tags():
            raise JobFailed(
                JobReason.REFUSED, f"Tag {release.tag} already exists; tags never move. Choose another version."
            )
        # A drift alarm, the lock, a freeze window or a red CI status since it was queued.
        _gates(ctx, hooks.before_release.ask(repository, release.sha))
        tag_object = mirror.make_tag(
            release.tag,
            release.sha,
            f"Release {release.tag}\n\n{release.notes}",
            tagger=identity(),
            timestamp=release.tag_timestamp or int(time.time()),
        )
        ctx.section(
            f"Push {repository.master_branch} {master[:10]} \u2192 {release.sha[:10]} and tag {release.tag}, atomically"
        )
        move = expect_move(ctx, repository, repository.master_branch, master, release.sha)
        try:
            # One atomic push: master and its tag land together or not at all.
            push(
                ctx,
                mirror,
                [
                    vcs.RefUpdate(f"refs/heads/{repository.master_branch}", release.sha, master),
                    vcs.RefUpdate(f"refs/tags/{release.tag}", tag_object, None),
                ],
                atomic=True,
            )
        except vcs.PushRejected as exc:
            moves.drop(move)
            raise JobFailed(
                JobReason.TARGET_MOVED,
                f"The remote refused the release ({exc}); nothing was changed. "
                "Refresh and open \u201cPromote to master\u201d again.",
            ) from None
        except PushOutcomeUnknown as exc:
            refs = remote_refs(ctx, repository)
            if refs is None:
                raise JobFailed(exc.reason, UNKNOWN_OUTCOME.format(error=exc)) from None
            if refs.get(f"refs/heads/{repository.master_branch}") != release.sha:
                raise JobFailed(
                    exc.reason,
                    f"The push failed ({exc}); {repository.master_branch} is "
                    "unchanged on the remote. Open \u201cPromote to master\u201d again.",
                ) from None
        return _mark_released(ctx, release, mirror, heads)


def _mark_released(ctx: JobContext, release: Release, mirror: vcs.Mirror, heads: dict[str, str]) -> str:
    repository = release.repository
    landed = [
        p.pk
        for p in selectors.unreleased_promotions(repository)
        if p.promoted_sha and mirror.is_ancestor(p.promoted_sha, release.sha)
    ]
    with ctx.atomic():
        Release.objects.filter(pk=release.pk).update(state=ReleaseState.RELEASED, released_at=timezone.now())
        Promotion.objects.filter(pk__in=landed).update(state=PromotionState.RELEASED, release=release)
        Branch.objects.filter(repository=repository, name=repository.master_branch).update(head_sha=release.sha)
        moves.settle(repository, repository.master_branch, release.sha)
        Repository.objects.filter(pk=repository.pk).update(latest_version=release.version)
        audit_record(
            "release.released",
            actor=release.released_by,
            repository=repository,
            obj=release,
            from_sha=release.previous_master_sha,
            to_sha=release.sha,
            details={"version": release.version, "promotions": landed},
        )
    derived.after_move(
        ctx, repository, mirror, {**heads, repository.master_branch: release.sha}, repository.master_branch
    )
    return f"Released {release.tag}: {repository.master_branch} is {release.sha[:10]}."


def on_release_final(job: Job) -> None:
    if job.state == JobState.SUCCEEDED:
        return
    release = Release.objects.filter(pk=job.params.get("release"), state=ReleaseState.PENDING).first()
    if release is not None:
        release.state = ReleaseState.FAILED
        release.state_message = job.message
        release.save(update_fields=["state", "state_message"])
        audit_record(
            "release.failed",
            actor=None,
            repository=release.repository,
            obj=release,
            result=job.reason,
            message=job.message[:1000],
        )


def run_copy_master(ctx: JobContext) -> str:
    repository = Repository.objects.get(pk=ctx.params["repository"])
    with ctx.hold(repository.lock_key):
        mirror, heads = refresh(ctx, repository)
        master = heads.get(repository.master_branch)
        if not master:
            raise JobFailed(JobReason.REFUSED, f"{repository.master_branch} does not exist on the remote.")
        staging = heads.get(repository.staging_branch, "")
        move = None
        if staging != master:
            ctx.section(f"Set {repository.staging_branch} to {repository.master_branch} {master[:10]}")
            move = expect_move(ctx, repository, repository.staging_branch, staging, master)
            try:
                push(ctx, mirror, [vcs.RefUpdate(f"refs/heads/{repository.staging_branch}", master, staging)])
            except vcs.PushRejected as exc:
                moves.drop(move)
                raise JobFailed(
                    JobReason.TARGET_MOVED,
                    f"{repository.staging_branch} moved meanwhile ({exc}); "
                    "nothing was changed. Review the new commits, then copy again.",
                ) from None
            except PushOutcomeUnknown as exc:
                raise JobFailed(exc.reason, UNKNOWN_OUTCOME.format(error=exc)) from None
        elif not (
            selectors.unreleased_promotions(repository).exists()
            or hooks.branch_held.any(repository, repository.staging_branch)
        ):
            return f"{repository.staging_branch} is already a copy of {repository.master_branch}."
        # Also when staging already equals master because someone forced it back by hand:
        # the cycle still starts anew, its promotions are discarded, a staging alarm resets.
        with ctx.atomic():
            if move is None or moves.still_pending(move):  # else a sync recorded it first
                derived.record_copy(repository, ctx.job.created_by, staging, master)
        derived.after_move(
            ctx, repository, mirror, {**heads, repository.staging_branch: master}, repository.staging_branch
        )
    return f"{repository.staging_branch} is now {repository.master_branch} {master[:10]}; a new cycle starts."


# -- updating a branch from staging --------------------------------------------------------


def update_message(branch: Branch, staging: str, actor: Any) -> str:
    requester = actor.get_username() if actor is not None else "unknown"
    staging_name = branch.repository.staging_branch
    return (
        f"Update {branch.name} from {staging_name}\n\n"
        f"Merge {staging_name} {staging[:12]} into {branch.name}, so the branch is tested with what "
        f"{staging_name} has now.\n\nRequested-by: {requester}\nReleaseboard-Update: {branch.pk}\n"
    )


def run_update_branch(ctx: JobContext) -> str:
    branch = Branch.objects.select_related("repository").get(pk=ctx.params["branch"])
    repository = branch.repository
    ref = f"refs/heads/{branch.name}"
    with ctx.hold(repository.lock_key):
        mirror, heads = refresh(ctx, repository)
        staging, head = heads.get(repository.staging_branch), heads.get(branch.name)
        if not staging:
            raise JobFailed(JobReason.REFUSED, f"{repository.staging_branch} does not exist; nothing to update from.")
        if not head:
            raise JobFailed(JobReason.REFUSED, f"{branch.name} no longer exists on the remote.")
        if mirror.is_ancestor(staging, head):
            tip = mirror.commits_between(None, head, limit=1)
            if tip and str(branch.pk) in tip[0].trailers.get("Releaseboard-Update", []):
                # An earlier attempt pushed our merge, then its worker died before recording it.
                _record_updated(ctx, branch, mirror.resolve(f"{head}^1") or "", head)
            return f"{branch.name} already has everything {repository.staging_branch} has; nothing to merge."
        ctx.section(f"Merge {repository.staging_branch} {staging[:10]} into {branch.name} {head[:10]}")
        merge = _git(ctx, "merge", mirror.merge, head, staging)
        if not merge.clean:
            files = merge.conflicted_paths
            with ctx.atomic():
                audit_record(
                    "branch.update_conflict",
                    actor=ctx.job.created_by,
                    repository=repository,
                    obj=branch,
                    from_sha=head,
                    to_sha=staging,
                    result="conflict",
                    details={"conflicts": files},
                )
            raise JobFailed(
                JobReason.MERGE_CONFLICT,
                f"{repository.staging_branch} conflicts with {branch.name} in: {', '.join(files)}. "
                f"{branch.name} was not changed. Merge {repository.staging_branch} into it locally, "
                "resolve the conflicts and push.",
            )
        merged = mirror.commit_tree(
            merge.tree,
            [head, staging],
            update_message(branch, staging, ctx.job.created_by),
            author=identity(),
            committer=identity(),
            timestamp=int(time.time()),
        )
        ctx.section(f"Push {merged[:10]} to {branch.name} (expecting {head[:10]})")
        try:
            push(ctx, mirror, [vcs.RefUpdate(ref, merged, head)])
        except vcs.PushRejected as exc:
            raise JobFailed(
                JobReason.TARGET_MOVED,
                f"{branch.name} moved during the update ({exc}); it was not "
                "changed. Click \u201cUpdate from staging\u201d again.",
            ) from None
        except PushOutcomeUnknown as exc:
            refs = remote_refs(ctx, repository)
            if refs is None:
                raise JobFailed(exc.reason, UNKNOWN_OUTCOME.format(error=exc)) from None
            if refs.get(ref) != merged:
                raise JobFailed(
                    exc.reason,
                    f"The push failed ({exc}); {branch.name} is unchanged on the "
                    "remote. Click \u201cUpdate from staging\u201d again.",
                ) from None
        _record_updated(ctx, branch, head, merged)
    return f"{branch.name} now has {repository.staging_branch} {staging[:10]}, as {merged[:10]}."


def _record_updated(ctx: JobContext, branch: Branch, before: str, after: str) -> None:
    """Record a pushed update once: a later attempt that finds it landed calls this again."""
    with ctx.atomic():
        if AuditEvent.objects.filter(
            action="branch.updated", object_type="branch", object_id=branch.pk, to_sha=after
        ).exists():
            return
        fresh = Branch.objects.select_for_update().get(pk=branch.pk)
        # Staging is now in the branch: nothing behind, no hotfix missing, one merge commit more.
        ahead = fresh.ahead if fresh.head_sha == after else (fresh.ahead or 0) + 1
        Branch.objects.filter(pk=branch.pk).update(head_sha=after, behind=0, ahead=ahead, missing_hotfixes=[])
        audit_record(
            "branch.updated",
            actor=ctx.job.created_by,
            repository=branch.repository,
            obj=branch,
            from_sha=before,
            to_sha=after,
        )


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
