"""The DORA metrics pages: figures with their numerators and denominators, weekly charts,
and the rows behind each figure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from releaseboard.metrics import charts, compute, present
from releaseboard.releases.models import Repository
from releaseboard.roles import Perm, require
from releaseboard.web.access import repository_for

ROWS_LIMIT = 500
DEFAULT_DAYS = 90


def _days(request: HttpRequest) -> int:
    value = request.GET.get("days", "")
    return int(value) if value.isdigit() and int(value) in compute.WINDOWS else DEFAULT_DAYS


def _scope(request: HttpRequest, repo: str | None) -> tuple[Repository | None, list[int] | None]:
    if repo is None:
        require(request.user, Perm.VIEW)
        return None, None
    repository = repository_for(request, repo, Perm.VIEW)
    return repository, [repository.pk]


@login_required
def metrics(request: HttpRequest, repo: str | None = None) -> HttpResponse:
    repository, ids = _scope(request, repo)
    days = _days(request)
    report = compute.report(ids, days, timezone.now())
    figures = [{"figure": f, "shown": present.value(f.key, f.value)} for f in report.figures]
    context = {
        "repository": repository,
        "metrics_repository": repository,
        "report": report,
        "figures": figures,
        "windows": compute.WINDOWS,
        "chart": charts.deployments_per_week(
            report.weeks, f"Production deployments per week, last {days} days; failed changes in red"
        ),
    }
    return render(request, "web/metrics.html", context)


@login_required
def metric_rows(request: HttpRequest, metric: str, repo: str | None = None) -> HttpResponse:
    """The rows behind one figure: anyone can count them again."""
    repository, ids = _scope(request, repo)
    days = _days(request)
    now = timezone.now()
    since = now - timedelta(days=days)
    context: dict[str, Any] = {
        "repository": repository,
        "metrics_repository": repository,
        "days": days,
        "metric": metric,
    }
    if metric in ("frequency", "failure_rate", "rework"):
        rows = compute.production_deployments(ids, since, now).select_related(
            "environment", "repository", "requested_by"
        )
        flag = {"failure_rate": compute.failed_change_q(), "rework": compute.rework_q()}.get(metric)
        context["total"] = rows.count()
        if flag is not None and request.GET.get("only") == "numerator":
            rows = rows.filter(flag)
        context["deployments"] = list(rows.order_by("-finished_at")[:ROWS_LIMIT])
    elif metric in ("lead_median", "lead_p90"):
        commits = compute.lead_commits(ids, since, now).select_related("deployment__environment", "repository")
        context["total"] = commits.count()
        context["commits"] = list(commits.order_by("lead_seconds")[:ROWS_LIMIT])
    elif metric == "restore":
        incidents = compute.restored_incidents(ids, since, now).select_related(
            "cause__environment", "resolved_by_deployment__environment", "repository"
        )
        context["total"] = incidents.count()
        context["incidents"] = list(incidents.order_by("resolved_at")[:ROWS_LIMIT])
    else:
        raise Http404("No such metric.")
    context["limit"] = ROWS_LIMIT
    return render(request, "web/metric_rows.html", context)
