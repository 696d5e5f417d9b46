"""Deployment use cases. Each is one transaction: check, write rows and one audit event,
enqueue the deploy job on commit. Views, the API and commands call these; they take the
acting user and raise `Refused` (the releases services' exception) with a message that
says what, why and what to do next, or PermissionDenied for a missing role."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from releaseboard import branching
from releaseboard.audit.service import record as audit_record
from releaseboard.deployments.models import (
    Deployment,
    DeploymentKind,
    DeploymentState,
    Environment,
    Source,
    Tier,
)
from releaseboard.jobs import service as jobs
from releaseboard.jobs.models import Job
from releaseboard.policy import guard as policy_guard
from releaseboard.releases import selectors as release_selectors
from releaseboard.releases.models import Release, ReleaseState
from releaseboard.releases.services import Refused
from releaseboard.roles import Perm, has_perm, require
from releaseboard.sandbox import split_command

__all__ = [
    "Refused",
    "deploy",
    "lock_environment",
    "may_deploy",
    "redeploy",
    "rollback",
    "save_environment",
    "unlock_environment",
]


def may_deploy(user: Any, environment: Environment) -> bool:
    """Release managers and Ops deploy anywhere; developers only to unprotected,
    non-production environments."""
    if has_perm(user, Perm.DEPLOY):
        return True
    return not (environment.protected or environment.is_production) and has_perm(user, Perm.RUN_TESTS)


def _require_deploy(user: Any, environment: Environment) -> None:
    if not may_deploy(user, environment):
        raise PermissionDenied(f"{environment.name} is protected: only release managers and Ops deploy there.")


# -- configuration -----------------------------------------------------------------------


def validate_environment(environment: Environment) -> None:
    for field in ("deploy_command", "check_command"):
        try:
            split_command(getattr(environment, field))
        except ValueError as exc:
            raise Refused(f"The command cannot be read: {exc}.", field=field) from None
    if not environment.deploy_command.strip():
        raise Refused("Say how to deploy: the command a worker runs.", field="deploy_command")
    if environment.tier == Tier.PRODUCTION:
        environment.protected = True  # production is always protected


def save_environment(environment: Environment, *, actor: Any) -> Environment:
    """Add or change an environment (Admin role)."""
    require(actor, Perm.CONFIGURE)
    validate_environment(environment)
    with transaction.atomic():
        created = environment.pk is None
        environment.save()
        audit_record(
            "environment.added" if created else "environment.changed",
            actor=actor,
            repository=environment.repository,
            obj=environment,
            details={"tier": environment.tier, "source": environment.source, "auto_deploy": environment.auto_deploy},
        )
    return environment


def lock_environment(environment: Environment, *, actor: Any, reason: str) -> Environment:
    """Stop deployments to one environment until someone unlocks it."""
    _require_deploy(actor, environment)
    if not reason.strip():
        raise Refused("Say why the environment is locked; others will read it.", field="reason")
    with transaction.atomic():
        environment = Environment.objects.select_for_update().get(pk=environment.pk)
        if environment.is_locked:
            raise Refused(f"{environment.name} is already locked: \u201c{environment.locked_reason}\u201d.")
        environment.locked_reason, environment.locked_by, environment.locked_at = reason.strip(), actor, timezone.now()
        environment.save(update_fields=["locked_reason", "locked_by", "locked_at"])
        audit_record(
            "environment.locked", actor=actor, repository=environment.repository, obj=environment, message=reason
        )
    return environment


def unlock_environment(environment: Environment, *, actor: Any) -> Environment:
    _require_deploy(actor, environment)
    with transaction.atomic():
        environment = Environment.objects.select_for_update().get(pk=environment.pk)
        if not environment.is_locked:
            raise Refused(f"{environment.name} is not locked.")
        environment.locked_reason, environment.locked_by, environment.locked_at = "", None, None
        environment.save(update_fields=["locked_reason", "locked_by", "locked_at"])
        audit_record("environment.unlocked", actor=actor, repository=environment.repository, obj=environment)
    return environment


# -- deployments -------------------------------------------------------------------------


def was_on_staging_tier(repository: Any, sha: str) -> bool:
    """Whether this exact commit ran successfully on a staging-tier environment."""
    return Deployment.objects.filter(
        repository=repository, tier=Tier.STAGING, sha=sha, state=DeploymentState.SUCCEEDED
    ).exists()


def run_refusal(environment: Environment, kind: str) -> str:
    """Why a deployment may not start now (checked when asked and again by the runner
    right before the command, so a lock or freeze that began meanwhile still stops it)."""
    if environment.is_locked:
        who = environment.locked_by.get_username() if environment.locked_by else "someone"
        return (
            f"{environment.name} is locked by {who}: \u201c{environment.locked_reason}\u201d. "
            "Unlock it on the environments page first."
        )
    # Freeze windows and the repository lock stop production deploys as they stop
    # releases; a rollback passes, since it restores what ran before.
    if (
        environment.is_production
        and kind != DeploymentKind.ROLLBACK
        and (stop := policy_guard.stop_reason(environment.repository))
    ):
        return f"{stop} Production deploys wait until it ends; a rollback may still go ahead."
    return ""


def _target(environment: Environment, release: Release | None) -> tuple[Release | None, str, str]:
    repository = environment.repository
    if release is not None:
        if release.repository_id != repository.pk or release.state != ReleaseState.RELEASED:
            raise Refused(f"{release.tag} is not a finished release of {repository.name}.", field="version")
        return release, release.version, release.sha
    if environment.source == Source.STAGING_HEAD:
        sha = release_selectors.head(repository, repository.staging_branch)
        if not sha:
            raise Refused(f"{repository.staging_branch} does not exist yet; there is nothing to deploy.")
        return None, f"staging-{sha[:10]}", sha
    latest = Release.objects.filter(repository=repository, state=ReleaseState.RELEASED).order_by("-id").first()
    if latest is None:
        raise Refused(f"{repository.name} has no release yet; {environment.name} deploys released tags only.")
    return latest, latest.version, latest.sha


def release_by_version(repository: Any, version: str) -> Release:
    """The finished release with this version ("1.4.0" or "v1.4.0"), or Refused."""
    text = version.strip().removeprefix("v")
    release = Release.objects.filter(repository=repository, version=text, state=ReleaseState.RELEASED).first()
    if release is None:
        raise Refused(f"{repository.name} has no finished release {text}.", field="version")
    return release


def _is_hotfix(release: Release | None) -> bool:
    if release is None:
        return False
    kinds = {p.branch.kind for p in release.promotions.select_related("branch")}
    return kinds == {branching.BranchKind.HOTFIX.value}


def _older(release: Release | None, than: Deployment | None) -> bool:
    if release is None or than is None or than.release is None:
        return False
    return branching.Version.parse(release.version) < branching.Version.parse(than.release.version)


def deploy(
    environment: Environment,
    *,
    actor: Any,
    release: Release | None = None,
    kind: str = DeploymentKind.DEPLOY,
    reason: str = "",
    override_reason: str = "",
    forward: bool = False,
    idempotency_key: str | None = None,
) -> Deployment:
    """Queue a deployment of a release (or, for a staging-head environment, the staging
    head) to the environment. `actor` None means Releaseboard itself (auto-deploy).

    Production takes only what ran on a staging-tier environment, unless a release
    manager or Ops gives `override_reason`. After a rollback, production is pinned:
    deploying a newer version needs `forward=True`.
    """
    if actor is not None:
        _require_deploy(actor, environment)
    if idempotency_key and (job := Job.objects.filter(idempotency_key=idempotency_key).first()):
        return Deployment.objects.get(pk=job.subject_id)  # type: ignore[misc]
    environment = Environment.objects.select_related("repository", "current__release").get(pk=environment.pk)
    repository = environment.repository
    release, version, sha = _target(environment, release)
    current = environment.current
    if kind == DeploymentKind.DEPLOY and current is not None and current.sha == sha:
        kind = DeploymentKind.REDEPLOY
    if kind == DeploymentKind.ROLLBACK:
        if not reason.strip():
            raise Refused("Say why you roll back; the board shows it while production is pinned.", field="reason")
        if not _older(release, current):
            now = current.label if current else "nothing"
            raise Refused(f"A rollback goes to an earlier release than the one running ({now}).", field="version")
    elif (
        kind == DeploymentKind.DEPLOY
        and current is not None
        and current.kind == DeploymentKind.ROLLBACK
        and not forward
    ):
        raise Refused(
            f"{environment.name} is pinned to {current.label} by a rollback: {current.reason} "
            "Deploying forward is an explicit choice: tick \u201cdeploy forward\u201d and deploy again.",
            field="forward",
        )
    if why := run_refusal(environment, kind):
        raise Refused(why)
    if active := environment.deployments.filter(state__in=DeploymentState.active()).first():
        raise Refused(
            f"{active} is still {active.get_state_display().lower()}; one deployment at a time per environment."
        )
    override = override_reason.strip()
    if environment.is_production and kind != DeploymentKind.ROLLBACK and not was_on_staging_tier(repository, sha):
        if not override or actor is None or not has_perm(actor, Perm.DEPLOY):
            raise Refused(
                f"{version} was never deployed to a staging-tier environment. Deploy it to staging first, or, as a "
                "release manager or Ops, give a reason to override.",
                field="override_reason",
            )
    else:
        override = ""

    def create() -> Deployment:
        deployment = Deployment.objects.create(
            environment=environment,
            repository=repository,
            tier=environment.tier,
            release=release,
            version=version,
            sha=sha,
            kind=kind,
            hotfix=_is_hotfix(release),
            reason=reason.strip(),
            override_reason=override,
            requested_by=actor,
            created_at=timezone.now(),
        )
        job = jobs.create_job(
            "deploy",
            title=f"{deployment.get_kind_display()} {deployment.label} to {repository.name}/{environment.name}",
            params={"deployment": deployment.pk},
            created_by=actor,
            subject=deployment,
            scope=repository,
            lock_key=environment.lock_key,
            idempotency_key=idempotency_key,
        )
        Deployment.objects.filter(pk=deployment.pk).update(job=job)
        deployment.job = job
        audit_record(
            f"deployment.{kind}.requested",
            actor=actor,
            repository=repository,
            obj=deployment,
            from_sha=current.sha if current else "",
            to_sha=sha,
            message=reason.strip() or override,
            details={"environment": environment.name, "version": version, "override": bool(override)},
        )
        return deployment

    try:
        with transaction.atomic():
            return create()
    except IntegrityError:  # the same idempotency key, committed by a concurrent request
        if idempotency_key and (job := Job.objects.filter(idempotency_key=idempotency_key).first()):
            return Deployment.objects.get(pk=job.subject_id)  # type: ignore[misc]
        raise


def redeploy(environment: Environment, *, actor: Any, idempotency_key: str | None = None) -> Deployment:
    """Deploy what the environment runs now once more (e.g. after a config change)."""
    _require_deploy(actor, environment)
    current = environment.current
    if current is None:
        raise Refused(f"Nothing was deployed to {environment.name} yet; deploy first.")
    if current.release is None and environment.source == Source.STAGING_HEAD:
        # A staging-head environment redeploys the same commit, not today's staging head.
        return _redeploy_commit(environment, current, actor, idempotency_key)
    return deploy(
        environment, actor=actor, release=current.release, kind=DeploymentKind.REDEPLOY, idempotency_key=idempotency_key
    )


def _redeploy_commit(environment: Environment, current: Deployment, actor: Any, key: str | None) -> Deployment:
    _require_deploy(actor, environment)
    if environment.deployments.filter(state__in=DeploymentState.active()).exists():
        raise Refused("One deployment at a time per environment; wait for the running one.")
    with transaction.atomic():
        deployment = Deployment.objects.create(
            environment=environment,
            repository=environment.repository,
            tier=environment.tier,
            version=current.version,
            sha=current.sha,
            kind=DeploymentKind.REDEPLOY,
            requested_by=actor,
            created_at=timezone.now(),
        )
        job = jobs.create_job(
            "deploy",
            title=f"Redeploy {current.version} to {environment}",
            params={"deployment": deployment.pk},
            created_by=actor,
            subject=deployment,
            scope=environment.repository,
            lock_key=environment.lock_key,
            idempotency_key=key,
        )
        Deployment.objects.filter(pk=deployment.pk).update(job=job)
        audit_record(
            "deployment.redeploy.requested",
            actor=actor,
            repository=environment.repository,
            obj=deployment,
            to_sha=current.sha,
        )
    return deployment


def rollback(
    environment: Environment, *, actor: Any, release: Release, reason: str, idempotency_key: str | None = None
) -> Deployment:
    """Deploy an earlier release and pin the environment to it until someone deploys forward."""
    return deploy(
        environment,
        actor=actor,
        release=release,
        kind=DeploymentKind.ROLLBACK,
        reason=reason,
        idempotency_key=idempotency_key,
    )
