"""Defects a new user hit on the pages (issue 13): each test failed before its fix."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from releaseboard.jobs.models import Job
from releaseboard.releases.models import Branch, Repository

KEY = "0b1c7a4e-3f52-4d4f-9a35-1f6f0c2d8e11"


@pytest.fixture
def shop(db: None) -> Repository:
    repository = Repository.objects.create(
        name="shop", remote_url="/srv/git/shop.git", test_command="true", master_in_staging=True
    )
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha="b" * 40)
    return repository


def request_branch(client: Client, name: str, kind: str = "feature") -> Any:
    return client.post(
        reverse("web:branch_request", args=["shop"]),
        {"kind": kind, "name": name, "purpose": "Try it", "idempotency_key": KEY},
    )


# -- 2. Request branch: a typed prefix, the final name, and '..' ------------------------------


def test_typed_prefix_of_the_chosen_kind_is_not_doubled(client: Client, shop: Repository, developer: Any) -> None:
    client.force_login(developer)
    response = request_branch(client, "feature/typo-test")
    assert response.status_code == 302
    assert Branch.objects.filter(repository=shop, name="feature/typo-test").exists()
    assert not Branch.objects.filter(name__startswith="feature/feature/").exists()


def test_prefix_of_the_other_kind_is_refused_with_a_question(client: Client, shop: Repository, developer: Any) -> None:
    client.force_login(developer)
    response = request_branch(client, "hotfix/typo-test", kind="feature")
    assert response.status_code == 200
    assert "prefix of the other kind" in response.context["form"].errors["name"][0]
    assert not Job.objects.exists()


def test_two_dots_are_named_in_the_error(client: Client, shop: Repository, developer: Any) -> None:
    client.force_login(developer)
    response = request_branch(client, "feature/../x")
    assert response.status_code == 200
    assert "'..'" in response.context["form"].errors["name"][0]


def test_request_branch_page_shows_the_final_name(client: Client, shop: Repository, developer: Any) -> None:
    client.force_login(developer)
    page = client.get(reverse("web:branch_request", args=["shop"])).content.decode()
    assert 'id="branch-final-name"' in page
    assert "feature/&lt;name&gt;" in page
    assert 'data-prefix-hotfix="hotfix/"' in page
    # The help and the error agree that '/' groups parts of a name.
    assert "&#x27;/&#x27; to group" in page
    refused = request_branch(client, "Bad Name").content.decode()
    assert refused.count("&#x27;/&#x27; to group") == 2  # help and error


# -- 3. Sign in -------------------------------------------------------------------------------


def test_wrong_password_shows_its_error_once(client: Client, developer: Any) -> None:
    response = client.post(reverse("login"), {"username": developer.username, "password": "wrong"})
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("Please enter a correct") == 1
