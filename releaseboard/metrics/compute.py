"""The DORA figures, each with its numerator and denominator, from a fixed number of
queries whatever the history's size (docs/metrics.md defines each one exactly).

A window is [now - days, now). "Production deployments" are the deployments to a
production-tier environment that succeeded, counted by the time they finished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncWeek

from releaseboard.deployments.models import (
    Deployment,
    DeploymentCommit,
    DeploymentKind,
    DeploymentState,
    Incident,
    Tier,
)
from releaseboard.metrics import bands

WINDOWS = (30, 90, 365)


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    value: float | None  # None: no data in the window
    numerator: float
    denominator: float
    numerator_label: str
    denominator_label: str
    band: str = ""


@dataclass
class Week:
    start: datetime
    deployments: int = 0
    failures: int = 0
    lead_median: float | None = None


@dataclass
class Report:
    days: int
    since: datetime
    until: datetime
    figures: list[Figure] = field(default_factory=list)
    weeks: list[Week] = field(default_factory=list)

    def figure(self, key: str) -> Figure:
        return next(f for f in self.figures if f.key == key)


def _scope(qs: QuerySet[Any], repository_ids: list[int] | None, field_name: str = "repository_id") -> QuerySet[Any]:
    return qs if repository_ids is None else qs.filter(**{f"{field_name}__in": repository_ids})


def production_deployments(repository_ids: list[int] | None, since: datetime, until: datetime) -> QuerySet[Deployment]:
    """The denominator rows: successful production deployments finished in the window,
    each marked failed_change (caused an incident, or a later rollback replaced it) and
    rework (a rollback, or a release made only of hotfixes)."""
    rolled_back = Deployment.objects.filter(
        previous=OuterRef("pk"), kind=DeploymentKind.ROLLBACK, state=DeploymentState.SUCCEEDED
    )
    rows = Deployment.objects.filter(
        tier=Tier.PRODUCTION, state=DeploymentState.SUCCEEDED, finished_at__gte=since, finished_at__lt=until
    )
    return _scope(rows, repository_ids).annotate(
        caused_incident=Exists(Incident.objects.filter(cause=OuterRef("pk"))),
        rolled_back=Exists(rolled_back),
    )


def failed_change_q() -> Q:
    return Q(caused_incident=True) | Q(rolled_back=True)


def rework_q() -> Q:
    return Q(kind=DeploymentKind.ROLLBACK) | Q(hotfix=True)


def lead_commits(repository_ids: list[int] | None, since: datetime, until: datetime) -> QuerySet[DeploymentCommit]:
    rows = DeploymentCommit.objects.filter(deployed_at__gte=since, deployed_at__lt=until)
    return _scope(rows, repository_ids)


def restored_incidents(repository_ids: list[int] | None, since: datetime, until: datetime) -> QuerySet[Incident]:
    rows = Incident.objects.filter(resolved_at__gte=since, resolved_at__lt=until)
    return _scope(rows, repository_ids)


def nearest_rank(sorted_values: list[float], p: float) -> float | None:
    """The p-th percentile by nearest rank: the value at 1-based rank ceil(p/100 * n)."""
    if not sorted_values:
        return None
    return sorted_values[max(1, math.ceil(p / 100 * len(sorted_values))) - 1]


def _ranked(rows: QuerySet[DeploymentCommit], count: int, p: float) -> float | None:
    """One percentile read through the index: ORDER BY lead_seconds, one row at an offset."""
    if not count:
        return None
    rank = max(1, math.ceil(p / 100 * count))
    value = rows.order_by("lead_seconds").values_list("lead_seconds", flat=True)[rank - 1 : rank]
    return float(next(iter(value)))


def report(repository_ids: list[int] | None, days: int, now: datetime, *, weekly: bool = True) -> Report:
    until = now
    since = now - timedelta(days=days)
    result = Report(days=days, since=since, until=until)

    counts = production_deployments(repository_ids, since, until).aggregate(
        total=Count("id"), failed=Count("id", filter=failed_change_q()), rework=Count("id", filter=rework_q())
    )
    total, weeks = counts["total"], days / 7
    per_week = total / weeks
    result.figures.append(
        Figure(
            "frequency",
            "Deployment frequency",
            per_week,
            total,
            weeks,
            "production deployments",
            "weeks",
            bands.deployment_frequency(per_week),
        )
    )
    commits = lead_commits(repository_ids, since, until)
    n = commits.count()
    median, p90 = _ranked(commits, n, 50), _ranked(commits, n, 90)
    result.figures.append(
        Figure("lead_median", "Lead time for changes (median)", median, 0, n, "", "commits", bands.lead_time(median))
    )
    result.figures.append(Figure("lead_p90", "Lead time for changes (p90)", p90, 0, n, "", "commits"))
    rate = counts["failed"] / total if total else None
    result.figures.append(
        Figure(
            "failure_rate",
            "Change failure rate",
            rate,
            counts["failed"],
            total,
            "caused an incident or were rolled back",
            "production deployments",
            bands.change_failure_rate(rate),
        )
    )
    restores = sorted(
        (i.resolved_at - i.started_at).total_seconds()
        for i in restored_incidents(repository_ids, since, until).only("started_at", "resolved_at")
    )
    restore = nearest_rank(restores, 50)
    result.figures.append(
        Figure(
            "restore",
            "Time to restore (median)",
            restore,
            0,
            len(restores),
            "",
            "incidents resolved",
            bands.time_to_restore(restore),
        )
    )
    rework = counts["rework"] / total if total else None
    result.figures.append(
        Figure(
            "rework",
            "Deployment rework rate",
            rework,
            counts["rework"],
            total,
            "rollbacks or hotfix releases",
            "production deployments",
        )
    )
    if weekly:
        result.weeks = weekly_buckets(repository_ids, since, until)
    return result


def weekly_buckets(repository_ids: list[int] | None, since: datetime, until: datetime) -> list[Week]:
    """Production deployments and failed changes per ISO week (Monday 00:00 UTC), two queries."""
    first = (since - timedelta(days=since.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    weeks: dict[datetime, Week] = {}
    start = first
    while start < until:
        weeks[start] = Week(start)
        start += timedelta(days=7)
    rows = (
        production_deployments(repository_ids, since, until)
        .annotate(week=TruncWeek("finished_at"))
        .values("week")
        .annotate(total=Count("id"), failed=Count("id", filter=failed_change_q()))
        .order_by()
    )
    for row in rows:
        week = weeks.get(row["week"])
        if week is not None:
            week.deployments, week.failures = row["total"], row["failed"]
    return list(weeks.values())
