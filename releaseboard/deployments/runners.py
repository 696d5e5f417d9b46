"""The deploy job: run the environment's deploy command (and check) in the sandbox on a
checkout of the commit, one deployment at a time per environment (a lease)."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from releaseboard import sandbox
from releaseboard.audit.service import record as audit_record
from releaseboard.deployments import leadtime, services
from releaseboard.deployments.models import Deployment, DeploymentKind, DeploymentState, Environment, Incident, Source
from releaseboard.jobs import registry
from releaseboard.jobs.execution import JobCancelled, JobContext, JobFailed
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases.models import Release, ReleaseState
from releaseboard.releases.runners import git_step, mirror_for


def _label(deployment: Deployment | None) -> str:
    return deployment.label if deployment is not None else "nothing (its first deployment)"


def run_deploy(ctx: JobContext) -> str:
    deployment = Deployment.objects.select_related("environment__repository", "release").get(
        pk=ctx.params["deployment"]
    )
    environment = deployment.environment
    repository = environment.repository
    with ctx.hold(environment.lock_key):
        environment = Environment.objects.select_related("current", "locked_by", "repository").get(pk=environment.pk)
        previous = environment.current
        if why := services.run_refusal(environment, deployment.kind):
            raise JobFailed(JobReason.REFUSED, why)
        with ctx.atomic():
            Deployment.objects.filter(pk=deployment.pk).update(state=DeploymentState.RUNNING, started_at=timezone.now())
        ctx.section(f"Fetch {repository.remote_url}")
        mirror = mirror_for(repository, ctx)
        git_step(ctx, "fetch from the remote", mirror.fetch)
        if not mirror.has_commit(deployment.sha):
            raise JobFailed(
                JobReason.GIT_ERROR, f"{deployment.sha[:10]} is not on the remote any more; nothing was deployed."
            )
        extra = {
            "RELEASEBOARD_ENVIRONMENT": environment.name,
            "RELEASEBOARD_VERSION": deployment.version,
            "RELEASEBOARD_SHA": deployment.sha,
            "RELEASEBOARD_PREVIOUS_VERSION": previous.version if previous else "",
        }
        home = settings.WORK_DIR / "home" / f"deploy-{environment.pk}" / str(ctx.job.pk)
        shutil.rmtree(home, ignore_errors=True)
        (home / "tmp").mkdir(parents=True)
        try:
            ctx.section(f"Check out {deployment.sha[:10]}")
            worktrees = settings.WORK_DIR / "deploy-worktrees" / str(environment.pk)
            with git_step(ctx, "check out the commit", mirror.checkout, worktrees, deployment.sha) as path:
                env = sandbox.minimal_env(home, {"TMPDIR": str(home / "tmp"), **extra})
                _command(ctx, environment, "Deploy", environment.deploy_command, Path(path), env, previous)
                if environment.check_command:
                    _command(ctx, environment, "Check", environment.check_command, Path(path), env, previous)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        changes = leadtime.changes_in(mirror, deployment) if environment.is_production else []
        return _mark_deployed(ctx, deployment, environment, previous, changes)


def _command(
    ctx: JobContext,
    environment: Environment,
    label: str,
    command: str,
    cwd: Path,
    env: dict[str, str],
    previous: Deployment | None,
) -> None:
    ctx.check_cancel()
    ctx.section(label)
    step = ctx.start_step(label, command)
    result = sandbox.run(
        sandbox.split_command(command),
        cwd=cwd,
        env=env,
        timeout=environment.timeout,
        on_output=ctx.log,
        should_cancel=ctx.cancel_requested,
        output_cap=settings.TEST_OUTPUT_CAP_BYTES,
    )
    ctx.finish_step(step, result.exit_code, result.outcome.value)
    if result.outcome is sandbox.Outcome.CANCELLED:
        ctx.raise_if_lost()
        raise JobCancelled()
    if result.passed:
        return
    if label == "Deploy":
        raise JobFailed(
            JobReason.TIMED_OUT if result.outcome is sandbox.Outcome.TIMED_OUT else JobReason.DEPLOY_FAILED,
            f"The deploy command failed: {result.message}. {environment.name} stays on {_label(previous)}; "
            "the log above shows the command's output. Fix the cause and deploy again.",
        )
    raise JobFailed(
        JobReason.CHECK_FAILED,
        f"The check after the deploy failed: {result.message}. Releaseboard still records {environment.name} on "
        f"{_label(previous)}, but the deploy command had run: roll back or deploy again.",
    )


def _mark_deployed(
    ctx: JobContext, deployment: Deployment, environment: Environment, previous: Deployment | None, changes: list
) -> str:
    now = timezone.now()
    with ctx.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(
            state=DeploymentState.SUCCEEDED, finished_at=now, previous=previous, state_message=""
        )
        Environment.objects.filter(pk=environment.pk).update(current=deployment)
        resolved = []
        if environment.is_production:
            leadtime.record(deployment, changes, now)
            # A later production deployment (a rollback or a fix) resolves open incidents.
            open_incidents = Incident.objects.filter(cause__environment=environment, resolved_at__isnull=True)
            resolved = list(open_incidents.values_list("pk", flat=True))
            open_incidents.update(resolved_at=now, resolved_by_deployment=deployment)
        audit_record(
            f"deployment.{deployment.kind}.succeeded",
            actor=deployment.requested_by,
            repository=environment.repository,
            obj=deployment,
            from_sha=previous.sha if previous else "",
            to_sha=deployment.sha,
            details={
                "environment": environment.name,
                "version": deployment.version,
                "previous": previous.version if previous else "",
                "resolved_incidents": resolved,
                "commits": len(changes),
            },
        )
    return f"{environment.name} runs {deployment.label} ({deployment.sha[:10]}), was {_label(previous)}."


def on_deploy_final(job: Job) -> None:
    if job.state == JobState.SUCCEEDED:
        return
    deployment = Deployment.objects.filter(pk=job.params.get("deployment"), state__in=DeploymentState.active()).first()
    if deployment is None:
        return
    state = DeploymentState.CANCELLED if job.state == JobState.CANCELLED else DeploymentState.FAILED
    Deployment.objects.filter(pk=deployment.pk).update(
        state=state, state_message=job.message, finished_at=timezone.now()
    )
    audit_record(
        f"deployment.{deployment.kind}.{state}",
        actor=None,
        repository=deployment.repository,
        obj=deployment,
        to_sha=deployment.sha,
        result=job.reason or state,
        message=job.message[:1000],
        details={"environment": deployment.environment.name, "version": deployment.version},
    )


# -- auto-deploy -------------------------------------------------------------------------


def auto_deploy(job: Job) -> None:
    """After a promotion or copy of master (staging moved) or a release landed: deploy to
    each environment that asks for it. A refusal (locked, pinned, not on staging) is
    recorded, never an error for the job that triggered it."""
    if job.state != JobState.SUCCEEDED or job.scope_id is None:
        return
    source = Source.RELEASES if job.kind == "release" else Source.STAGING_HEAD
    release = None
    if source == Source.RELEASES:
        release = Release.objects.filter(pk=job.params.get("release"), state=ReleaseState.RELEASED).first()
        if release is None:
            return
    for environment in Environment.objects.filter(
        repository_id=job.scope_id, auto_deploy=True, source=source
    ).select_related("repository", "current"):
        current = environment.current
        if current is not None and current.kind == DeploymentKind.ROLLBACK:
            why = f"pinned to {current.label} by a rollback"
        else:
            try:
                services.deploy(environment, actor=None, release=release)
                continue
            except services.Refused as exc:
                why = exc.message
        audit_record(
            "deployment.auto_skipped",
            actor=None,
            repository=environment.repository,
            obj=environment,
            result="refused",
            message=f"Auto-deploy to {environment.name} skipped: {why}"[:1000],
        )


def register_all() -> None:
    registry.register(registry.JobKind("deploy", run_deploy, "tests", on_deploy_final))
    for kind in ("promote", "copy_master", "release"):
        registry.also_on_final(kind, auto_deploy)
