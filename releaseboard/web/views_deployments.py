"""Environments, deployments, rollbacks and incidents: thin views over deployments.services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from releaseboard.deployments import incidents, selectors, services
from releaseboard.deployments.models import Deployment, Environment, Incident, Tier
from releaseboard.paging import cursor, keyset_page
from releaseboard.releases.models import Release, ReleaseState, Repository
from releaseboard.roles import Perm, has_perm
from releaseboard.web.access import repository_for
from releaseboard.web.actions import act
from releaseboard.web.forms import posted_key
from releaseboard.web.forms_deployments import CloseIncidentForm, DeployForm, IncidentForm, LockForm, RollbackForm

HISTORY_PAGE = 30


def _environment(request: HttpRequest, repo: str, name: str) -> Environment:
    repository = repository_for(request, repo, Perm.VIEW)
    return get_object_or_404(selectors.environments(repository), name=name)


def _deployable(request: HttpRequest, repo: str, name: str) -> Environment:
    """The environment, if this user may deploy to it (checked before the form is read)."""
    environment = _environment(request, repo, name)
    if not services.may_deploy(request.user, environment):
        raise PermissionDenied(f"{environment.name} is protected: only release managers and Ops deploy there.")
    return environment


def _versions(repository: Repository) -> list[str]:
    return list(
        Release.objects.filter(repository=repository, state=ReleaseState.RELEASED)
        .order_by("-id")
        .values_list("version", flat=True)[:50]
    )


@login_required
def environment_lane(request: HttpRequest, repo: str) -> HttpResponse:
    """The board's environments lane; it polls itself (its own region, apart from the board's)."""
    repository = repository_for(request, repo, Perm.VIEW)
    context = {"repository": repository, "environment_cards": selectors.lane(repository)}
    return render(request, "web/_environments.html", context)


@login_required
def environment_list(request: HttpRequest, repo: str) -> HttpResponse:
    repository = repository_for(request, repo, Perm.VIEW)
    context = {
        "repository": repository,
        "environment_cards": selectors.lane(repository),
        "incidents": list(selectors.incidents(repository)[:20]),
    }
    return render(request, "web/environments.html", context)


@login_required
def environment_detail(request: HttpRequest, repo: str, env: str) -> HttpResponse:
    environment = _environment(request, repo, env)
    repository = environment.repository
    versions = _versions(repository)
    page = keyset_page(
        selectors.history(environment),
        "id",
        before=cursor(request.GET.get("before")),
        after=cursor(request.GET.get("after")),
        size=HISTORY_PAGE,
    )
    context = {
        "repository": repository,
        "environment": environment,
        "card": next(c for c in selectors.lane(repository) if c.environment.pk == environment.pk),
        "may_deploy": services.may_deploy(request.user, environment),
        "may_incident": has_perm(request.user, Perm.MANAGE_INCIDENTS) and environment.tier == Tier.PRODUCTION,
        "deploy_form": DeployForm(versions=versions),
        "rollback_form": RollbackForm(versions=versions),
        "lock_form": LockForm(),
        "page": page,
    }
    return render(request, "web/environment_detail.html", context)


def _back(environment: Environment) -> HttpResponse:
    return redirect("web:environment_detail", repo=environment.repository.name, env=environment.name)


def _started(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    messages.success(request, f"{deployment} is queued; its log follows live.")
    return redirect("web:job_detail", job_id=deployment.job_id) if deployment.job_id else _back(deployment.environment)


@login_required
@require_POST
def environment_deploy(request: HttpRequest, repo: str, env: str) -> HttpResponse:
    environment = _deployable(request, repo, env)
    form = DeployForm(request.POST, versions=_versions(environment.repository))
    if not form.is_valid():
        messages.error(request, "Choose a version from the list.")
        return _back(environment)
    data = form.cleaned_data

    def deploy() -> Deployment:
        release = services.release_by_version(environment.repository, data["version"]) if data["version"] else None
        return services.deploy(
            environment,
            actor=request.user,
            release=release,
            override_reason=data["override_reason"],
            forward=data["forward"],
            idempotency_key=form.key,
        )

    return act(request, deploy, back=lambda: _back(environment), then=lambda done: _started(request, done))


@login_required
@require_POST
def environment_rollback(request: HttpRequest, repo: str, env: str) -> HttpResponse:
    environment = _deployable(request, repo, env)
    form = RollbackForm(request.POST, versions=_versions(environment.repository))
    if not form.is_valid():
        messages.error(request, "Choose the release to roll back to and say why.")
        return _back(environment)

    def rollback() -> Deployment:
        release = services.release_by_version(environment.repository, form.cleaned_data["version"])
        return services.rollback(
            environment,
            actor=request.user,
            release=release,
            reason=form.cleaned_data["reason"],
            idempotency_key=form.key,
        )

    return act(request, rollback, back=lambda: _back(environment), then=lambda done: _started(request, done))


@login_required
@require_POST
def environment_redeploy(request: HttpRequest, repo: str, env: str) -> HttpResponse:
    environment = _deployable(request, repo, env)
    return act(
        request,
        lambda: services.redeploy(environment, actor=request.user, idempotency_key=posted_key(request.POST)),
        back=lambda: _back(environment),
        then=lambda deployment: _started(request, deployment),
    )


@login_required
@require_POST
def environment_lock(request: HttpRequest, repo: str, env: str) -> HttpResponse:
    environment = _deployable(request, repo, env)
    form = LockForm(request.POST)
    try:
        if environment.is_locked:
            services.unlock_environment(environment, actor=request.user)
            messages.success(request, f"{environment.name} is unlocked.")
        else:
            services.lock_environment(
                environment, actor=request.user, reason=form.data.get("reason", "") if form.is_valid() else ""
            )
            messages.success(request, f"{environment.name} is locked; deployments to it stop.")
    except services.Refused as exc:
        messages.error(request, exc.message)
    return _back(environment)


@login_required
@require_http_methods(["GET", "POST"])
def incident_open(request: HttpRequest, repo: str, deployment_id: int) -> HttpResponse:
    repository = repository_for(request, repo, Perm.MANAGE_INCIDENTS)
    deployment = get_object_or_404(
        Deployment.objects.select_related("environment", "repository"), pk=deployment_id, repository=repository
    )
    form = IncidentForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            incidents.open_incident(deployment, actor=request.user, **form.cleaned_data)
        except services.Refused as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Incident opened; {deployment} is marked as its cause.")
            return redirect("web:environment_list", repo=repository.name)
    return render(request, "web/incident_open.html", {"repository": repository, "deployment": deployment, "form": form})


@login_required
@require_POST
def incident_close(request: HttpRequest, repo: str, incident_id: int) -> HttpResponse:
    repository = repository_for(request, repo, Perm.MANAGE_INCIDENTS)
    incident = get_object_or_404(Incident, pk=incident_id, repository=repository)
    form = CloseIncidentForm(request.POST)
    try:
        incidents.close_incident(incident, actor=request.user, note=form.data.get("note", ""))
        messages.success(request, f"Incident #{incident.pk} is closed.")
    except services.Refused as exc:
        messages.error(request, exc.message)
    return redirect("web:environment_list", repo=repository.name)
