"""What a page offers comes from the same rule the service enforces, computed once per
page: "Update from staging" on the board, "Approve" on the policy page, "Retry" on a job."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from releaseboard.jobs.models import Job, JobState
from releaseboard.policy import service as policy
from releaseboard.policy.models import HotfixException
from releaseboard.releases import services
from releaseboard.releases.models import Branch, BranchState, Promotion, Repository
from releaseboard.roles import Role
from tests.conftest import _user

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(developer: User) -> tuple[Repository, Branch]:
    repository = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha="b" * 40)
    branch = Branch.objects.create(
        repository=repository,
        name="feature/login",
        kind="feature",
        head_sha="c" * 40,
        state=BranchState.ACTIVE,
        behind=2,
        requested_by=developer,
    )
    return repository, branch


def _offers_update(client: Client, user: User, repository: Repository, branch: Branch) -> bool:
    client.force_login(user)
    page = client.get(reverse("web:board", args=[repository.name])).content.decode()
    return reverse("web:branch_update", args=[repository.name, branch.pk]) in page


def test_the_board_offers_update_from_staging_exactly_to_whom_the_service_allows(
    client: Client, shop: tuple[Repository, Branch], developer: User, release_manager: User, ops: User
) -> None:
    repository, branch = shop
    other_developer = _user("dev2", Role.DEVELOPER)
    for user in (developer, other_developer, release_manager, ops):
        assert _offers_update(client, user, repository, branch) == services.may_update_branch(user, branch), user
    assert _offers_update(client, developer, repository, branch)
    assert not _offers_update(client, other_developer, repository, branch)


def test_the_policy_page_offers_approve_to_a_second_release_manager_only(
    client: Client, shop: tuple[Repository, Branch], release_manager: User
) -> None:
    repository, branch = shop
    promotion = Promotion.objects.create(repository=repository, branch=branch, title="Fix")
    exception = HotfixException.objects.create(
        promotion=promotion,
        reason="Customers are billed wrong",
        requested_by=release_manager,
        requested_at=timezone.now(),
    )
    second = _user("rm2", Role.RELEASE_MANAGER)
    url = reverse("web:exception_approve", args=[repository.name, exception.pk])
    for user, expected in ((release_manager, False), (second, True)):
        client.force_login(user)
        page = client.get(reverse("web:policy", args=[repository.name])).content.decode()
        assert (url in page) is expected is policy.may_approve(exception, user)


@pytest.mark.parametrize(("kind", "state", "offered"), [
    ("sync", JobState.FAILED, True),
    ("sync", JobState.SUCCEEDED, False),
    ("release", JobState.FAILED, False),
])  # fmt: skip
def test_a_job_page_offers_retry_where_the_service_would_retry(
    client: Client, shop: tuple[Repository, Branch], release_manager: User, kind: str, state: str, offered: bool
) -> None:
    repository, _ = shop
    job = Job.objects.create(kind=kind, title="x", state=state, scope_id=repository.pk, scope_name=repository.name)
    client.force_login(release_manager)
    page: Any = client.get(reverse("web:job_detail", args=[job.pk]))
    assert page.context["retryable"] is offered is services.is_retryable(job)
