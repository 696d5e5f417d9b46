"""Every page costs the same number of SQL queries whatever the amount of data behind it:
each page is fetched once with a small data set and again after the data grew three-fold
(more repositories, branches, promotions, releases, jobs, log lines and audit events)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench.dataset import grow, repository
from releaseboard.jobs.models import Job
from releaseboard.releases.models import Branch, BranchState, Promotion, Repository
from releaseboard.roles import Role
from tests.conftest import rolled_back_session

pytestmark = pytest.mark.django_db


def _first(model: Any, **filters: Any) -> Any:
    return model.objects.filter(**filters).order_by("id").first()


# Each page by its URL, built from the data of the first repository.
PAGES: dict[str, Callable[[Repository], str]] = {
    "repository list": lambda repo: reverse("web:repository_list"),
    "board": lambda repo: reverse("web:board", args=[repo.name]),
    "branch": lambda repo: reverse(
        "web:branch_detail", args=[repo.name, _first(Branch, repository=repo, state=BranchState.ACTIVE).pk]
    ),
    "promotion": lambda repo: reverse(
        "web:promotion_detail", args=[repo.name, _first(Promotion, repository=repo, state="open").pk]
    ),
    "release preview": lambda repo: reverse("web:release_new", args=[repo.name]),
    "releases": lambda repo: reverse("web:release_list", args=[repo.name]),
    "policy": lambda repo: reverse("web:policy", args=[repo.name]),
    "copy master": lambda repo: reverse("web:copy_master", args=[repo.name]),
    "jobs": lambda repo: reverse("web:job_list"),
    "jobs needing attention": lambda repo: reverse("web:job_attention"),
    "job": lambda repo: reverse("web:job_detail", args=[_first(Job, scope_id=repo.pk).pk]),
    "job log": lambda repo: reverse("web:job_log", args=[_first(Job, scope_id=repo.pk).pk]) + "?after=0",
    "audit log": lambda repo: reverse("web:audit_list"),
    "audit verify": lambda repo: reverse("web:audit_verify"),
}


def _count(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(captured.captured_queries)


@pytest.fixture(scope="module")
def counts(django_db_setup: None, django_db_blocker: Any) -> dict[str, tuple[int, int]]:
    """Each page's query count with the small data set and with three times as much,
    measured on one data set built once for the module, in a transaction rolled back at
    the end (building it is most of the cost; the pages only read it)."""
    with rolled_back_session(django_db_blocker, "rm-pages", Role.RELEASE_MANAGER) as (release_manager, client):
        repos = [repository(f"repo-{i}") for i in range(2)]
        for repo in repos:
            grow(repo, release_manager)
        urls = {page: PAGES[page](repos[0]) for page in PAGES}
        for url in urls.values():
            _count(client, url)  # warm caches that are filled once per process (content types, sessions)
        small = {page: _count(client, url) for page, url in urls.items()}
        repos += [repository(f"repo-{i}") for i in range(2, 6)]
        for repo in repos:
            grow(repo, release_manager)
            grow(repo, release_manager)
        measured = {page: (small[page], _count(client, url)) for page, url in urls.items()}
    return measured


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_page_costs_the_same_queries_with_three_times_the_data(page: str, counts: dict[str, tuple[int, int]]) -> None:
    small, large = counts[page]
    assert large == small, f"{page}: {small} queries with the small data set, {large} with three times as much"


def test_the_releases_page_shows_the_newest_releases_and_pages_back_by_keyset(
    client: Client, release_manager: Any
) -> None:
    from bench.dataset import Mix
    from releaseboard.releases.models import Release
    from releaseboard.web.views_releases import PAGE_SIZE

    repo = repository("shop")
    grow(repo, release_manager, Mix(open_branches=0, closed_branches=0, releases=PAGE_SIZE + 5, jobs=0, audit_events=0))
    client.force_login(release_manager)
    ids = list(Release.objects.filter(repository=repo).order_by("-id").values_list("id", flat=True))
    url = reverse("web:release_list", args=[repo.name])
    first = client.get(url).context["page"]
    assert [r.pk for r in first] == ids[:PAGE_SIZE] and first.older_before == ids[PAGE_SIZE - 1]
    assert first.newer_after is None
    older = client.get(url, {"before": first.older_before})
    assert [r.pk for r in older.context["page"]] == ids[PAGE_SIZE:]
    assert older.context["page"].older_before is None and older.context["page"].newer_after == ids[PAGE_SIZE]
    assert f"?after={ids[PAGE_SIZE]}" in older.content.decode()
    # A mangled cursor shows the first page rather than an error.
    assert [r.pk for r in client.get(url, {"before": "x'--"}).context["page"]] == ids[:PAGE_SIZE]
