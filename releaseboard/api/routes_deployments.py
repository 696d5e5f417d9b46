"""Environments, deployments, incidents and the DORA metrics.

As thin as the pages: check the token's scope and that the user sees the repository
(access.py), then call the same service the environments page calls; the services check
who may deploy where (protected environments, Perm.DEPLOY) and raise Refused, which
problems.py turns into 409/422.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from django.utils import timezone
from ninja import Router, Status

from releaseboard.deployments import incidents as incident_services
from releaseboard.deployments import selectors, services
from releaseboard.deployments.models import Deployment, Environment, Incident
from releaseboard.metrics import compute
from releaseboard.releases.models import Repository
from releaseboard.roles import Perm
from releaseboard.tokens.models import Scope

from . import access
from . import schemas_deployments as s
from .access import idempotency_key, repository_for
from .problems import Problem

router = Router(tags=["deployments"])

MAX_DAYS = 365


def _environment(request: HttpRequest, repo: str, env: str, scope: Scope) -> tuple[Any, Environment]:
    user, repository = repository_for(request, repo, Perm.VIEW, scope)
    environment = Environment.objects.select_related("repository").filter(repository=repository, name=env).first()
    if environment is None:
        raise Http404(
            f"{repository.name} has no environment named '{env}'; 'rb env list {repository.name}' lists them."
        )
    return user, environment


def _card(environment: Environment) -> dict[str, Any]:
    return s.environment_out(s.card_for(environment, selectors.lane(environment.repository)))


def _started(deployment: Deployment) -> Status[dict[str, Any]]:
    deployment = Deployment.objects.select_related("environment__repository", "previous", "requested_by", "job").get(
        pk=deployment.pk
    )
    return Status(201, s.started_out(deployment))


@router.get("/repos/{repo}/environments", response=list[s.EnvironmentOut], summary="Environments: what runs where")
def environment_list(request: HttpRequest, repo: str) -> list[dict[str, Any]]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    return [s.environment_out(card) for card in selectors.lane(repository)]


@router.get(
    "/repos/{repo}/environments/{env}", response=s.EnvironmentDetailOut, summary="One environment and its history"
)
def environment_detail(request: HttpRequest, repo: str, env: str, limit: int = 50) -> dict[str, Any]:
    _, environment = _environment(request, repo, env, Scope.READ)
    history = selectors.history(environment).select_related("environment__repository")[: max(1, min(limit, 500))]
    return {"environment": _card(environment), "history": [s.deployment_out(d) for d in history]}


@router.post(
    "/repos/{repo}/environments/{env}/deploy",
    response={201: s.DeploymentStartedOut},
    summary="Deploy a release (default: the latest)",
)
def environment_deploy(request: HttpRequest, repo: str, env: str, body: s.DeployIn) -> Status[dict[str, Any]]:
    user, environment = _environment(request, repo, env, Scope.DEPLOY)
    version = body.version.strip()
    release = services.release_by_version(environment.repository, version) if version else None
    deployment = services.deploy(
        environment,
        actor=user,
        release=release,
        reason=body.reason,
        override_reason=body.override_reason,
        forward=body.forward,
        idempotency_key=idempotency_key(request, f"deploy:{environment.pk}"),
    )
    return _started(deployment)


@router.post(
    "/repos/{repo}/environments/{env}/rollback",
    response={201: s.DeploymentStartedOut},
    summary="Roll back to an earlier release (pins the environment)",
)
def environment_rollback(request: HttpRequest, repo: str, env: str, body: s.RollbackIn) -> Status[dict[str, Any]]:
    user, environment = _environment(request, repo, env, Scope.DEPLOY)
    try:
        release = services.release_by_version(environment.repository, body.to_version)
    except services.Refused as refused:
        refused.field = "to_version"  # the body's name for it
        raise
    deployment = services.rollback(
        environment,
        actor=user,
        release=release,
        reason=body.reason,
        idempotency_key=idempotency_key(request, f"rollback:{environment.pk}"),
    )
    return _started(deployment)


@router.post(
    "/repos/{repo}/environments/{env}/redeploy",
    response={201: s.DeploymentStartedOut},
    summary="Deploy what runs there once more",
)
def environment_redeploy(request: HttpRequest, repo: str, env: str) -> Status[dict[str, Any]]:
    user, environment = _environment(request, repo, env, Scope.DEPLOY)
    key = idempotency_key(request, f"redeploy:{environment.pk}")
    return _started(services.redeploy(environment, actor=user, idempotency_key=key))


@router.post("/repos/{repo}/environments/{env}/lock", response=s.EnvironmentOut, summary="Stop deployments there")
def environment_lock(request: HttpRequest, repo: str, env: str, body: s.LockIn) -> dict[str, Any]:
    user, environment = _environment(request, repo, env, Scope.DEPLOY)
    return _card(services.lock_environment(environment, actor=user, reason=body.reason))


@router.post("/repos/{repo}/environments/{env}/unlock", response=s.EnvironmentOut, summary="Allow deployments again")
def environment_unlock(request: HttpRequest, repo: str, env: str) -> dict[str, Any]:
    user, environment = _environment(request, repo, env, Scope.DEPLOY)
    return _card(services.unlock_environment(environment, actor=user))


@router.get(
    "/repos/{repo}/deployments/{deployment_id}", response=s.DeploymentStartedOut, summary="One deployment and its job"
)
def deployment_detail(request: HttpRequest, repo: str, deployment_id: int) -> dict[str, Any]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    deployment = (
        Deployment.objects.select_related("environment__repository", "previous", "requested_by", "job")
        .filter(pk=deployment_id, repository=repository)
        .first()
    )
    if deployment is None:
        raise Http404(f"{repository.name} has no deployment #{deployment_id}.")
    return s.started_out(deployment)


@router.get("/repos/{repo}/incidents", response=list[s.IncidentOut], summary="Incidents, newest first")
def incident_list(request: HttpRequest, repo: str, open: bool = False) -> list[dict[str, Any]]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    found = selectors.incidents(repository).select_related("repository")
    if open:
        found = found.filter(resolved_at__isnull=True)
    return [s.incident_out(i) for i in found[:200]]


@router.post("/repos/{repo}/incidents", response={201: s.IncidentOut}, summary="Open an incident (Ops)")
def incident_open(request: HttpRequest, repo: str, body: s.IncidentIn) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.MANAGE_INCIDENTS, Scope.DEPLOY)
    cause = Deployment.objects.filter(pk=body.deployment, repository=repository).first()
    if cause is None:
        raise Problem(
            422,
            "validation_failed",
            f"{repository.name} has no deployment #{body.deployment}; "
            f"'rb env list {repository.name}' shows what runs where.",
            errors=[{"field": "deployment", "message": "no such deployment"}],
        )
    incident = incident_services.open_incident(
        cause, actor=user, started_at=body.started_at, description=body.description, link=body.link
    )
    return Status(201, s.incident_out(_incident(repository, incident.pk)))


@router.post(
    "/repos/{repo}/incidents/{incident_id}/close", response=s.IncidentOut, summary="Close an incident by hand (Ops)"
)
def incident_close(request: HttpRequest, repo: str, incident_id: int, body: s.IncidentCloseIn) -> dict[str, Any]:
    user, repository = repository_for(request, repo, Perm.MANAGE_INCIDENTS, Scope.DEPLOY)
    incident = _incident(repository, incident_id)
    incident_services.close_incident(incident, actor=user, note=body.note)
    return s.incident_out(_incident(repository, incident_id))


def _incident(repository: Repository, incident_id: int) -> Incident:
    incident = selectors.incidents(repository).select_related("repository").filter(pk=incident_id).first()
    if incident is None:
        raise Http404(f"{repository.name} has no incident #{incident_id}.")
    return incident


def _days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise Problem(
            422,
            "validation_failed",
            f"days is a window of 1 to {MAX_DAYS} days (the pages offer 30, 90 and 365).",
            errors=[{"field": "days", "message": f"between 1 and {MAX_DAYS}"}],
        )
    return days


@router.get("/repos/{repo}/metrics", response=s.MetricsOut, summary="DORA metrics of one repository")
def repo_metrics(request: HttpRequest, repo: str, days: int = 90) -> dict[str, Any]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    report = compute.report([repository.pk], _days(days), timezone.now())
    return s.metrics_out(report, repository.name)


@router.get("/metrics", response=s.MetricsOut, summary="DORA metrics of all repositories")
def all_metrics(request: HttpRequest, days: int = 90) -> dict[str, Any]:
    access.require_perm(request, Perm.VIEW, Scope.READ)
    return s.metrics_out(compute.report(None, _days(days), timezone.now()), None)
