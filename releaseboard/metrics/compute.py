"""The DORA figures, each with its numerator and denominator, from a fixed number of
queries whatever the history's size (docs/metrics.md defines each one exactly).

A window is [now - days, now). "Production deployments" are the deployments to a
production-tier environment that succeeded, counted by the time they finished.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, BigIntegerField, Count, Exists, F, OuterRef, Q, QuerySet, Window
from django.db.models.functions import RowNumber

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


def nearest_rank(sorted_values: Sequence[float], p: float) -> float | None:
    """The p-th percentile by nearest rank: the value at 1-based rank ceil(p/100 * n)."""
    if not sorted_values:
        return None
    return sorted_values[max(1, math.ceil(p / 100 * len(sorted_values))) - 1]


class _PercentileDisc(Aggregate):
    """PostgreSQL's percentile_disc(f): the first value whose position in the ordering is
    at least f * n, which is the nearest rank ceil(f * n)."""

    function = "percentile_disc"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = BigIntegerField()

    def __init__(self, expression: str, fraction: float) -> None:
        super().__init__(expression, fraction=f"{float(fraction):.4f}")


def lead_times(rows: QuerySet[DeploymentCommit]) -> tuple[int, float | None, float | None]:
    """(commits, median, p90) by nearest rank. PostgreSQL: one aggregate. Elsewhere: a
    count, then one query that numbers the rows by lead time (one sort) and returns only
    the two ranks asked for."""
    if connection.vendor == "postgresql":
        found = rows.aggregate(
            n=Count("id"), p50=_PercentileDisc("lead_seconds", 0.5), p90=_PercentileDisc("lead_seconds", 0.9)
        )
        if not found["n"]:
            return 0, None, None
        return found["n"], float(found["p50"]), float(found["p90"])
    n = rows.count()
    if not n:
        return 0, None, None
    r50, r90 = (max(1, math.ceil(p / 100 * n)) for p in (50, 90))
    numbered = rows.annotate(rank=Window(RowNumber(), order_by=F("lead_seconds").asc())).filter(rank__in=[r50, r90])
    ranked: dict[int, int] = {rank: lead for rank, lead in numbered.values_list("rank", "lead_seconds")}
    return n, float(ranked[r50]), float(ranked[r90])


def report(repository_ids: list[int] | None, days: int, now: datetime, *, weekly: bool = True) -> Report:
    until = now
    since = now - timedelta(days=days)
    result = Report(days=days, since=since, until=until)

    weeks_list, counts = _deployment_weeks(repository_ids, since, until)
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
    n, median, p90 = lead_times(lead_commits(repository_ids, since, until))
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
        (resolved - started).total_seconds()
        for started, resolved in restored_incidents(repository_ids, since, until).values_list(
            "started_at", "resolved_at"
        )
        if resolved is not None
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
        result.weeks = weeks_list
    return result


def _deployment_weeks(
    repository_ids: list[int] | None, since: datetime, until: datetime
) -> tuple[list[Week], dict[str, int]]:
    """Production deployments of the window per ISO week (Monday 00:00 UTC), and the
    window's totals: one query of small tuples, bucketed here (the weeks partition the
    window, so their sums are the totals)."""
    first = (since - timedelta(days=since.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    weeks: list[Week] = []
    start = first
    while start < until:
        weeks.append(Week(start))
        start += timedelta(days=7)
    counts = {"total": 0, "failed": 0, "rework": 0}
    rows = production_deployments(repository_ids, since, until).values_list(  # type: ignore[misc]
        "finished_at", "caused_incident", "rolled_back", "kind", "hotfix"
    )
    for finished_at, caused_incident, rolled_back, kind, hotfix in rows.order_by():
        if finished_at is None:  # never for a succeeded deployment; keeps the types honest
            continue
        if finished_at is None:  # never for a succeeded deployment; keeps the types honest
            continue
        week = weeks[(finished_at - first).days // 7]
        failed = bool(caused_incident or rolled_back)
        week.deployments += 1
        week.failures += failed
        counts["total"] += 1
        counts["failed"] += failed
        counts["rework"] += bool(kind == DeploymentKind.ROLLBACK or hotfix)
    return weeks, counts
