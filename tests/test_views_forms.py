"""The forms and the pages that decide which buttons to show."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from releaseboard.jobs.models import Job, JobState
from releaseboard.releases.models import (
    Branch,
    BranchState,
    Promotion,
    PromotionState,
    Repository,
    TestRun,
)
from releaseboard.releases.models import (
    TestResult as RunResult,
)

MERGE_SHA = "d" * 40
KEY = "0b1c7a4e-3f52-4d4f-9a35-1f6f0c2d8e11"


@pytest.fixture
def shop(db: None) -> Repository:
    """A repository as a sync left it: master and staging one commit apart."""
    repository = Repository.objects.create(
        name="shop", remote_url="/srv/git/shop.git", test_command="true", master_in_staging=True
    )
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha="b" * 40)
    return repository


@pytest.fixture
def promotion(shop: Repository, developer: Any) -> Promotion:
    branch = Branch.objects.create(
        repository=shop, name="feature/login", kind="feature", head_sha="c" * 40, requested_by=developer
    )
    return Promotion.objects.create(
        repository=shop,
        branch=branch,
        title="Login form",
        requested_by=developer,
        staging_sha="b" * 40,
        branch_sha="c" * 40,
        merge_sha=MERGE_SHA,
        merge_check="clean",
    )


def request_branch(client: Client, name: str, key: str = KEY) -> Any:
    return client.post(
        reverse("web:branch_request", args=["shop"]),
        {"kind": "feature", "name": name, "purpose": "Let people sign in", "idempotency_key": key},
    )


# -- Request branch ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Bad Name", "-x", ".."])
def test_request_branch_shows_invalid_name_next_to_the_field(
    client: Client, shop: Repository, developer: Any, name: str
) -> None:
    client.force_login(developer)
    response = request_branch(client, name)
    assert response.status_code == 200
    errors = response.context["form"].errors["name"]
    page = response.content.decode()
    assert errors and escape(errors[0]) in page
    assert 'class="field has-error"' in page
    assert not Branch.objects.filter(kind="feature").exists()
    assert not Job.objects.exists()


def test_request_branch_shows_taken_name_next_to_the_field(client: Client, shop: Repository, developer: Any) -> None:
    Branch.objects.create(repository=shop, name="feature/login", kind="feature", head_sha="c" * 40)
    client.force_login(developer)
    response = request_branch(client, "login")
    assert response.status_code == 200
    assert "feature/login already exists in shop; pick another name." in response.context["form"].errors["name"]
    assert not Job.objects.exists()


def test_request_branch_creates_requested_branch_and_queued_job_then_shows_the_job(
    client: Client, shop: Repository, developer: Any
) -> None:
    client.force_login(developer)
    response = request_branch(client, "login")
    branch = Branch.objects.get(repository=shop, name="feature/login")
    assert branch.state == BranchState.REQUESTED and branch.requested_by == developer
    job = Job.objects.get(kind="create_branch")
    assert job.state == JobState.QUEUED and job.subject_id == branch.pk
    assert response.status_code == 302 and response["Location"] == reverse("web:job_detail", args=[job.pk])


def test_submitting_the_same_request_branch_form_twice_creates_one_job(
    client: Client, shop: Repository, developer: Any
) -> None:
    client.force_login(developer)
    first = request_branch(client, "login")
    second = request_branch(client, "login")
    assert Job.objects.filter(kind="create_branch").count() == 1
    assert first["Location"] == second["Location"]


def test_request_branch_form_carries_a_fresh_idempotency_key(client: Client, shop: Repository, developer: Any) -> None:
    client.force_login(developer)
    first = client.get(reverse("web:branch_request", args=["shop"])).context["form"]["idempotency_key"].value()
    second = client.get(reverse("web:branch_request", args=["shop"])).context["form"]["idempotency_key"].value()
    assert first and second and first != second


# -- Promotion page ------------------------------------------------------------------------


def promotion_page(client: Client, promotion: Promotion) -> str:
    response = client.get(reverse("web:promotion_detail", args=["shop", promotion.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_promotion_page_waits_for_a_test_before_offering_promote_to_staging(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    client.force_login(release_manager)
    page = promotion_page(client, promotion)
    assert "Promote to staging" not in page
    assert 'data-phase="testing"' in page and "is being tested" in page


def test_promotion_page_does_not_offer_promote_after_a_failed_test(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    TestRun.objects.create(
        repository=promotion.repository,
        commit_sha=MERGE_SHA,
        tree_sha="e" * 40,
        result=RunResult.FAILED,
        promotion=promotion,
    )
    client.force_login(release_manager)
    page = promotion_page(client, promotion)
    assert "Promote to staging" not in page
    assert 'data-phase="tests-failed"' in page and "Run tests again" in page


def test_promotion_page_offers_promote_to_staging_once_the_merge_result_passed(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    TestRun.objects.create(
        repository=promotion.repository,
        commit_sha=MERGE_SHA,
        tree_sha="e" * 40,
        result=RunResult.PASSED,
        promotion=promotion,
    )
    client.force_login(release_manager)
    assert "Promote to staging" in promotion_page(client, promotion)


def test_a_passing_test_of_another_commit_does_not_count(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    TestRun.objects.create(
        repository=promotion.repository, commit_sha=promotion.branch_sha, tree_sha="e" * 40, result=RunResult.PASSED
    )
    client.force_login(release_manager)
    assert "Promote to staging" not in promotion_page(client, promotion)


def test_each_button_on_the_promotion_page_has_its_own_idempotency_key(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    """One shared key would make "Promote to staging" after "Run tests again" return the test job."""
    TestRun.objects.create(
        repository=promotion.repository,
        commit_sha=MERGE_SHA,
        tree_sha="e" * 40,
        result=RunResult.PASSED,
        promotion=promotion,
    )
    client.force_login(release_manager)
    keys = re.findall(r'name="idempotency_key" value="([^"]+)"', promotion_page(client, promotion))
    assert len(keys) == 2 and len(set(keys)) == 2


def test_developer_cannot_promote_to_staging(client: Client, promotion: Promotion, developer: Any) -> None:
    TestRun.objects.create(
        repository=promotion.repository,
        commit_sha=MERGE_SHA,
        tree_sha="e" * 40,
        result=RunResult.PASSED,
        promotion=promotion,
    )
    client.force_login(developer)
    assert "Promote to staging" not in promotion_page(client, promotion)
    response = client.post(reverse("web:promotion_promote", args=["shop", promotion.pk]))
    assert response.status_code == 403
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.OPEN and not Job.objects.exists()


def test_release_manager_promotes_a_tested_promotion_to_staging(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    TestRun.objects.create(
        repository=promotion.repository,
        commit_sha=MERGE_SHA,
        tree_sha="e" * 40,
        result=RunResult.PASSED,
        promotion=promotion,
    )
    client.force_login(release_manager)
    response = client.post(reverse("web:promotion_promote", args=["shop", promotion.pk]), {"idempotency_key": KEY})
    assert response.status_code == 302
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTING
    assert Job.objects.get(kind="promote").subject_id == promotion.pk


def test_refused_promote_says_why_on_the_promotion_page(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    client.force_login(release_manager)
    response = client.post(reverse("web:promotion_promote", args=["shop", promotion.pk]), follow=True)
    assert "The merge result has no passing test yet." in response.content.decode()


def test_request_promotion_opens_a_promotion_and_shows_it(client: Client, shop: Repository, developer: Any) -> None:
    branch = Branch.objects.create(
        repository=shop, name="feature/cart", kind="feature", head_sha="c" * 40, requested_by=developer
    )
    client.force_login(developer)
    response = client.post(
        reverse("web:promotion_request", args=["shop", branch.pk]),
        {"title": "Cart", "description": "", "idempotency_key": KEY},
    )
    promotion = Promotion.objects.get(branch=branch)
    assert response["Location"] == reverse("web:promotion_detail", args=["shop", promotion.pk])
    assert Job.objects.get(kind="test_promotion").subject_id == promotion.pk


def test_request_promotion_refusal_is_shown_on_the_form(client: Client, promotion: Promotion, developer: Any) -> None:
    client.force_login(developer)
    response = client.post(reverse("web:promotion_request", args=["shop", promotion.branch.pk]), {"title": "Again"})
    assert response.status_code == 200
    assert "already has an open promotion" in response.content.decode()


# -- Promote to master and Copy master to staging -------------------------------------------


def test_release_page_refuses_while_staging_has_no_passing_test(
    client: Client, shop: Repository, release_manager: Any
) -> None:
    client.force_login(release_manager)
    response = client.get(reverse("web:release_new", args=["shop"]))
    page = response.content.decode()
    assert "has no passing test" in page
    assert 'class="primary" disabled>Promote to master' in page


def test_release_page_proposes_a_version_and_notes_grouped_by_kind(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    Promotion.objects.filter(pk=promotion.pk).update(state=PromotionState.PROMOTED)
    TestRun.objects.create(
        repository=promotion.repository, commit_sha="b" * 40, tree_sha="e" * 40, result=RunResult.PASSED
    )
    client.force_login(release_manager)
    form = client.get(reverse("web:release_new", args=["shop"])).context["form"]
    assert form["version"].value() == "0.1.0"
    assert form["notes"].value() == (
        f"## Features\n\n- Login form (`feature/login`, requested by dev, promotion #{promotion.pk})"
    )


def test_release_post_refused_by_the_rules_is_shown_on_the_form(
    client: Client, shop: Repository, release_manager: Any
) -> None:
    client.force_login(release_manager)
    response = client.post(reverse("web:release_new", args=["shop"]), {"version": "0.1.0", "notes": ""})
    assert response.status_code == 200
    assert "has no passing test" in " ".join(response.context["form"].non_field_errors())


def test_copy_master_confirmation_lists_the_promotions_it_would_discard(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    Promotion.objects.filter(pk=promotion.pk).update(state=PromotionState.PROMOTED)
    client.force_login(release_manager)
    page = client.get(reverse("web:copy_master", args=["shop"])).content.decode()
    assert "will be discarded" in page
    assert f"#{promotion.pk} Login form" in page and "feature/login" in page


def test_copy_master_starts_a_job(client: Client, shop: Repository, release_manager: Any) -> None:
    client.force_login(release_manager)
    response = client.post(reverse("web:copy_master", args=["shop"]), {"idempotency_key": KEY})
    job = Job.objects.get(kind="copy_master")
    assert response["Location"] == reverse("web:job_detail", args=[job.pk])


def test_promotion_page_polling_gets_only_its_status(client: Client, promotion: Promotion, developer: Any) -> None:
    client.force_login(developer)
    response = client.get(reverse("web:promotion_detail", args=["shop", promotion.pk]), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="promotion-status"') and "<html" not in body
