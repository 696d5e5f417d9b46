"""The environments and metrics pages cost the same number of SQL queries whatever the
history behind them (the style of tests/test_page_queries.py): each page is fetched with
a small history and again after it grew several-fold."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from releaseboard.deployments import history
from releaseboard.deployments.models import Deployment, Environment, Tier
from releaseboard.releases.models import Repository
from releaseboard.roles import Role
from tests.conftest import rolled_back_session

pytestmark = pytest.mark.django_db

PAGES: dict[str, Callable[[Repository], str]] = {
    "board with its environments lane": lambda repo: reverse("web:board", args=[repo.name]),
    "environments lane": lambda repo: reverse("web:environment_lane", args=[repo.name]),
    "environments": lambda repo: reverse("web:environment_list", args=[repo.name]),
    "environment": lambda repo: reverse("web:environment_detail", args=[repo.name, "production"]),
    "metrics": lambda repo: reverse("web:metrics", args=[repo.name]) + "?days=365",
    "metrics, all repositories": lambda repo: reverse("web:metrics_all") + "?days=365",
    "metric rows: deployments": lambda repo: reverse("web:metric_rows", args=[repo.name, "failure_rate"]),
    "metric rows: commits": lambda repo: reverse("web:metric_rows", args=[repo.name, "lead_p90"]),
    "metric rows: incidents": lambda repo: reverse("web:metric_rows_all", args=["restore"]),
    "releases": lambda repo: reverse("web:release_list", args=[repo.name]),
}


def _repository(name: str) -> tuple[Environment, Environment]:
    repo = Repository.objects.create(name=name, remote_url=f"/srv/{name}.git", test_command="true")
    staging = Environment.objects.create(repository=repo, name="staging", tier=Tier.STAGING, deploy_command="true")
    production = Environment.objects.create(
        repository=repo, name="production", tier=Tier.PRODUCTION, deploy_command="true"
    )
    return staging, production


def _grow(envs: list[tuple[Environment, Environment]], days: int, seed: int, actor: Any) -> None:
    for i, (staging, production) in enumerate(envs):
        history.build(
            staging, production, days=days, now=timezone.now() - timedelta(days=seed), actor=actor, seed=seed + i
        )


def _count(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(captured.captured_queries)


@pytest.fixture(scope="module")
def counts(django_db_setup: None, django_db_blocker: Any) -> dict[str, tuple[int, int]]:
    """Each page's query count with a small history and after it grew several-fold,
    measured on one history built once for the module, in a transaction rolled back at
    the end (building it is most of the cost; the pages only read it)."""
    with rolled_back_session(django_db_blocker, "ops-pages", Role.OPS) as (ops, client):
        envs = [_repository(f"repo-{i}") for i in range(2)]
        _grow(envs, 60, 1, ops)
        urls = {page: PAGES[page](envs[0][0].repository) for page in PAGES}
        for url in urls.values():
            _count(client, url)  # warm caches filled once per process
        small = {page: _count(client, url) for page, url in urls.items()}
        before = Deployment.objects.count()
        envs += [_repository(f"repo-{i}") for i in range(2, 5)]
        _grow(envs, 150, 2, ops)
        _grow(envs, 150, 3, ops)
        assert Deployment.objects.count() > 5 * before
        measured = {page: (small[page], _count(client, url)) for page, url in urls.items()}
    return measured


@pytest.mark.parametrize("page", sorted(PAGES))
def test_an_environments_or_metrics_page_costs_the_same_queries_with_more_history(
    page: str, counts: dict[str, tuple[int, int]]
) -> None:
    small, large = counts[page]
    assert large == small, f"{page}: {small} queries with the small history, {large} with the larger one"
