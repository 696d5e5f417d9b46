"""One explicit state per promotion on the board and its page, with what happens next."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from releaseboard.jobs.models import Job, JobState
from releaseboard.policy import service as policy
from releaseboard.releases.models import Branch, Promotion, PromotionState, Repository, TestResult, TestRun
from releaseboard.web import phases

MERGE = "d" * 40


@pytest.fixture
def promotion(db: None, developer: Any) -> Promotion:
    shop = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    Branch.objects.create(repository=shop, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=shop, name="staging", kind="staging", head_sha="b" * 40)
    branch = Branch.objects.create(
        repository=shop, name="feature/login", kind="feature", head_sha="c" * 40, requested_by=developer
    )
    return Promotion.objects.create(
        repository=shop, branch=branch, title="Login", requested_by=developer, merge_sha=MERGE, merge_check="clean"
    )


def record_test(promotion: Promotion, result: str) -> TestRun:
    return TestRun.objects.create(
        repository=promotion.repository, promotion=promotion, commit_sha=MERGE, tree_sha="e" * 40, result=result
    )


def shown(client: Client, promotion: Promotion, user: Any) -> tuple[str, str]:
    client.force_login(user)
    board = client.get(reverse("web:board", args=["shop"])).content.decode()
    page = client.get(reverse("web:promotion_detail", args=["shop", promotion.pk])).content.decode()
    return board, page


@pytest.mark.parametrize(
    ("setup", "label"),
    [
        (lambda p, rm: None, phases.TESTING),
        (lambda p, rm: record_test(p, TestResult.FAILED), phases.TESTS_FAILED),
        (
            lambda p, rm: Promotion.objects.filter(pk=p.pk).update(merge_check="conflict", merge_sha=""),
            phases.CONFLICTS,
        ),
        (lambda p, rm: record_test(p, TestResult.PASSED), phases.READY),
        (
            lambda p, rm: (record_test(p, TestResult.PASSED), policy.lock(p.repository, actor=rm, reason="Migration")),
            phases.WAITING,
        ),
        (lambda p, rm: Promotion.objects.filter(pk=p.pk).update(state=PromotionState.PROMOTING), phases.PROMOTING),
        (lambda p, rm: Promotion.objects.filter(pk=p.pk).update(state=PromotionState.PROMOTED), phases.PROMOTED),
    ],
)
def test_board_and_page_show_the_same_one_state_and_what_next(
    client: Client, promotion: Promotion, release_manager: Any, setup: Any, label: str
) -> None:
    setup(promotion, release_manager)
    board, page = shown(client, promotion, release_manager)
    slug = label.lower().replace(" ", "-")
    assert f'data-phase="{slug}">{label}</span>' in page
    assert f'data-phase="{slug}">{label}</span>' in board
    assert "What next:" in page
    # No more raw states to decode next to it.
    assert ">Open</span>" not in page and ">Merges cleanly</span>" not in board


def test_waiting_says_why_in_one_sentence(client: Client, promotion: Promotion, release_manager: Any) -> None:
    record_test(promotion, TestResult.PASSED)
    policy.lock(promotion.repository, actor=release_manager, reason="Database migration")
    _, page = shown(client, promotion, release_manager)
    assert "Database migration" in page.split("What next:")[1].split("</p>")[0]


def test_a_running_retest_is_testing_even_after_an_older_failure(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    record_test(promotion, TestResult.FAILED)
    Job.objects.create(
        kind="test_promotion", title="Test", subject_type="promotion", subject_id=promotion.pk, state=JobState.RUNNING
    )
    _, page = shown(client, promotion, release_manager)
    assert 'data-phase="testing"' in page


def test_status_poller_reloads_the_page_once_the_job_ended(
    client: Client, promotion: Promotion, release_manager: Any
) -> None:
    job = Job.objects.create(
        kind="test_promotion", title="Test", subject_type="promotion", subject_id=promotion.pk, state=JobState.RUNNING
    )
    client.force_login(release_manager)
    url = reverse("web:promotion_detail", args=["shop", promotion.pk])
    assert "HX-Refresh" not in client.get(url, HTTP_HX_REQUEST="true").headers
    Job.objects.filter(pk=job.pk).update(state=JobState.FAILED)
    assert client.get(url, HTTP_HX_REQUEST="true").headers["HX-Refresh"] == "true"
