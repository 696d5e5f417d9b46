"""The board, and one journey through the web forms with jobs run for real."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from releaseboard.jobs.models import Job, JobState
from releaseboard.releases.models import Branch, BranchState, Promotion, Repository
from tests.conftest import run_jobs


@pytest.fixture
def shop(db: None) -> Repository:
    repository = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha="b" * 40)
    return repository


def test_board_shows_each_branch_in_its_lane(client: Client, shop: Repository, developer: Any) -> None:
    feature = Branch.objects.create(
        repository=shop, name="feature/login", kind="feature", head_sha="c" * 40, purpose="Sign in <b>fast</b>"
    )
    promotion = Promotion.objects.create(
        repository=shop, branch=feature, title="Login", merge_check="conflict", conflict_files=["app/views.py"]
    )
    client.force_login(developer)
    page = client.get(reverse("web:board", args=["shop"])).content.decode()
    branch_url = reverse("web:branch_detail", args=["shop", feature.pk])
    assert f'<a class="branch-name" href="{branch_url}">feature/login</a>' in page
    assert f'<a href="{reverse("web:promotion_detail", args=["shop", promotion.pk])}">Promotion #' in page
    assert 'id="board"' in page and 'hx-trigger="every 3s"' in page
    for name in ("feature/login", "staging", "master"):
        assert f'data-branch="{name}"' in page
    assert "app/views.py" in page and "Sign in &lt;b&gt;fast&lt;/b&gt;" in page
    assert "Request branch" in page and "Test staging" in page and "Refresh" in page
    assert "Promote to master" not in page, "developers do not release"


def test_board_polling_gets_only_the_board_fragment(client: Client, shop: Repository, developer: Any) -> None:
    client.force_login(developer)
    body = client.get(reverse("web:board", args=["shop"]), HTTP_HX_REQUEST="true").content.decode()
    assert body.lstrip().startswith('<div id="board"')
    assert "<html" not in body


def test_board_offers_copy_master_to_staging_when_staging_is_missing(
    client: Client, shop: Repository, release_manager: Any
) -> None:
    Branch.objects.filter(name="staging").delete()
    client.force_login(release_manager)
    page = client.get(reverse("web:board", args=["shop"])).content.decode()
    assert "staging does not exist" in page and "Copy master to staging" in page


def test_board_shows_the_sync_error(client: Client, shop: Repository, ops: Any) -> None:
    Repository.objects.filter(pk=shop.pk).update(sync_error="fatal: could not read from remote")
    client.force_login(ops)
    page = client.get(reverse("web:board", args=["shop"])).content.decode()
    assert "fatal: could not read from remote" in page
    assert "Refresh</button>" not in page and "Test staging" not in page, "ops change nothing"


def test_branch_page_links_a_javascript_ticket_as_text_only(client: Client, shop: Repository, developer: Any) -> None:
    branch = Branch.objects.create(repository=shop, name="feature/x", kind="feature", ticket_url="javascript:alert(1)")
    client.force_login(developer)
    page = client.get(reverse("web:branch_detail", args=["shop", branch.pk])).content.decode()
    assert 'href="javascript:' not in page
    assert "Request promotion" in page


def test_requested_branch_is_created_by_its_job(
    transactional_db: None, client: Client, repository: Repository, developer: Any, remote: Any
) -> None:
    client.force_login(developer)
    client.post(reverse("web:repository_refresh", args=[repository.name]))
    assert [job.state for job in run_jobs()] == [JobState.SUCCEEDED] * 2
    response = client.post(
        reverse("web:branch_request", args=[repository.name]),
        {"kind": "feature", "name": "login", "purpose": "Sign in", "ticket_url": ""},
    )
    job = Job.objects.get(kind="create_branch")
    assert response["Location"] == reverse("web:job_detail", args=[job.pk])
    run_jobs()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.message
    assert Branch.objects.get(name="feature/login").state == BranchState.ACTIVE
    assert remote.head("feature/login") == remote.head("staging")
    page = client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    assert "Succeeded" in page and "log/?after=" not in page
    board = client.get(reverse("web:board", args=[repository.name])).content.decode()
    assert 'data-branch="feature/login"' in board
