"""What every runner uses: the mirror, git steps recorded on the job, compare-and-swap
pushes, the remote's refs read afresh, and the check points' verdicts."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from releaseboard import vcs
from releaseboard.jobs.execution import JobContext, JobFailed, JobWaiting
from releaseboard.jobs.models import JobReason
from releaseboard.releases import hooks, moves
from releaseboard.releases.models import (
    ExpectedMove,
    Repository,
)


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


def git_step(ctx: JobContext, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
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


UNKNOWN_OUTCOME = (
    "The push failed ({error}) and the remote cannot be read now. Whether it landed is settled by "
    "the next sync, which reads the remote; nothing is pushed again blindly."
)


def settle_unknown_push(
    ctx: JobContext, repository: Repository, exc: PushOutcomeUnknown, branch: str, sha: str, again: str
) -> None:
    """After a push that failed without saying whether the remote took it: return if the
    remote's `branch` is `sha` now (it landed), else fail the job saying so (`again`:
    what the user does next)."""
    refs = remote_refs(ctx, repository)
    if refs is None:
        raise JobFailed(exc.reason, UNKNOWN_OUTCOME.format(error=exc)) from None
    if refs.get(f"refs/heads/{branch}") != sha:
        raise JobFailed(exc.reason, f"The push failed ({exc}); {branch} is unchanged on the remote. {again}") from None


def apply_verdict(ctx: JobContext, verdict: hooks.Verdict) -> None:
    """Act on a check point's verdict: refuse, or wait without holding a worker."""
    if isinstance(verdict, hooks.Stop):
        raise JobFailed(JobReason.REFUSED, verdict.message)
    if isinstance(verdict, hooks.Wait):
        raise JobWaiting(verdict.message, verdict.retry_in)


def expect_move(ctx: JobContext, repository: Repository, name: str, old: str, new: str) -> ExpectedMove:
    """Write the move this job is about to push, so the drift check knows it as ours."""
    with ctx.atomic():
        return moves.expect(repository, name, old, new, ctx.job)
