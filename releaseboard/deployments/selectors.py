"""Read-only queries for the board's environments lane, the environments pages and the
release page. A fixed number of queries whatever the history's length."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from releaseboard import branching
from releaseboard.deployments.models import Deployment, DeploymentKind, DeploymentState, Environment, Incident


@dataclass
class EnvironmentCard:
    environment: Environment
    current: Deployment | None
    active: Deployment | None
    last_failed: Deployment | None
    open_incidents: list[Incident]

    @property
    def pinned(self) -> bool:
        return self.current is not None and self.current.kind == DeploymentKind.ROLLBACK

    @property
    def rolled_back_from(self) -> str:
        previous = self.current.previous if self.current is not None else None
        return previous.label if previous is not None else ""

    def behind(self, latest_version: str) -> bool:
        """Whether master has a newer release than the one running here."""
        current = self.current
        if current is None or not current.version[:1].isdigit():
            return False
        try:
            return branching.Version.parse(current.version) < branching.Version.parse(latest_version)
        except ValueError:
            return False


def environments(repository: Any) -> QuerySet[Environment]:
    last_failed = Deployment.objects.filter(environment=OuterRef("pk"), state=DeploymentState.FAILED).order_by("-id")
    return (
        Environment.objects.filter(repository=repository)
        .annotate(last_failed_id=Subquery(last_failed.values("id")[:1]))
        .select_related(
            "repository",
            "locked_by",
            "current__requested_by",
            "current__release",
            "current__previous",
        )
    )


def lane(repository: Any) -> list[EnvironmentCard]:
    """What runs where, since when, deployed by whom: four queries for any history."""
    envs = list(environments(repository))
    ids = [e.pk for e in envs]
    active: dict[int, Deployment] = {}
    for d in Deployment.objects.filter(environment_id__in=ids, state__in=DeploymentState.active()).select_related(
        "requested_by"
    ):
        active.setdefault(d.environment_id, d)
    # The newest failure per environment, shown while it is newer than what runs there.
    failed_ids = [e.last_failed_id for e in envs if e.last_failed_id]  # type: ignore[attr-defined]
    failed = {d.environment_id: d for d in Deployment.objects.filter(pk__in=failed_ids)}
    incidents: dict[int, list[Incident]] = defaultdict(list)
    for i in Incident.objects.filter(cause__environment_id__in=ids, resolved_at__isnull=True).select_related("cause"):
        incidents[i.cause.environment_id].append(i)
    cards = []
    for e in envs:
        fail = failed.get(e.pk)
        if fail is not None and e.current is not None and fail.pk < e.current.pk:
            fail = None
        cards.append(EnvironmentCard(e, e.current, active.get(e.pk), fail, incidents.get(e.pk, [])))
    return cards


def history(environment: Environment) -> QuerySet[Deployment]:
    return environment.deployments.select_related("requested_by", "release", "previous", "job").prefetch_related(
        "incidents"
    )


def where_deployed(release_ids: list[int]) -> dict[int, list[Deployment]]:
    """For each release, its successful deployments (newest first), one query."""
    found: dict[int, list[Deployment]] = defaultdict(list)
    rows = (
        Deployment.objects.filter(release_id__in=release_ids, state=DeploymentState.SUCCEEDED)
        .select_related("environment")
        .order_by("-finished_at")
    )
    for d in rows:
        found[d.release_id].append(d)  # type: ignore[index]
    return dict(found)


def incidents(repository: Any) -> QuerySet[Incident]:
    return Incident.objects.filter(repository=repository).select_related(
        "cause__environment", "resolved_by_deployment__environment", "opened_by", "closed_by"
    )
