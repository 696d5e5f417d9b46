"""The pages in headless Chromium: a phone-sized screen, the favicon, and no console errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from releaseboard.jobs.models import Job, JobLogLine, JobState
from releaseboard.releases.models import Branch, Promotion, Repository, TestResult, TestRun
from releaseboard.review.models import PromotionReview
from tests.conftest import PASSWORD
from tests.test_browser_journey import browser  # noqa: F401  (the Chromium fixture, shared)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def shop(db: None) -> dict[str, Any]:
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    repository = Repository.objects.create(
        name="shop", remote_url="/srv/git/a-rather-long-path/to/the/shop.git", test_command="make test"
    )
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha="b" * 40)
    branch = Branch.objects.create(
        repository=repository, name="feature/saved-cards-at-checkout", kind="feature", head_sha="c" * 40
    )
    promotion = Promotion.objects.create(
        repository=repository,
        branch=branch,
        title="Saved cards at checkout for returning customers",
        staging_sha="b" * 40,
        branch_sha="c" * 40,
        merge_sha="d" * 40,
        merge_check="clean",
    )
    job = Job.objects.create(
        kind="test_promotion",
        title="Test the merge of feature/saved-cards-at-checkout into staging",
        scope_id=repository.pk,
        scope_name=repository.name,
        subject_type="promotion",
        subject_id=promotion.pk,
        state=JobState.FAILED,
        reason="tests_failed",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        log_lines=1,
    )
    JobLogLine.objects.create(job=job, seq=1, text="FAILED tests/test_checkout.py::test_saved_card_is_offered_first\n")
    TestRun.objects.create(
        repository=repository,
        promotion=promotion,
        commit_sha="d" * 40,
        tree_sha="e" * 40,
        result=TestResult.FAILED,
        summary="Test failed: exit code 1",
        job=job,
    )
    long_line = "+" + "x = 1  # " + "a very long line of code " * 12
    PromotionReview.objects.create(
        promotion=promotion,
        staging_sha="b" * 40,
        branch_sha="c" * 40,
        merge_sha="d" * 40,
        data={
            "commits": [{"sha": "c" * 40, "author": "Dev One", "email": "", "at": 0, "subject": "Saved cards " * 8}],
            "files": [
                {
                    "path": "shop/checkout/payment_methods/saved_cards_for_returning_customers.py",
                    "added": 1,
                    "deleted": 0,
                    "binary": False,
                    "patch": f"@@ -0,0 +1 @@\n{long_line}\n",
                    "omitted": "",
                }
            ],
            "conflicts": [],
            "truncated": False,
        },
    )
    return {"repository": repository, "promotion": promotion, "job": job}


@pytest.fixture
def phone(browser: Any, live_server: Any, shop: dict[str, Any]) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*accounts/login).*$"))
    yield page
    context.close()


def page_width(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def test_pages_fit_a_390_pixel_screen(phone: Any, live_server: Any, shop: dict[str, Any]) -> None:
    promotion = shop["promotion"]
    paths = (
        f"/r/shop/promotions/{promotion.pk}/",
        "/jobs/",
        f"/jobs/{shop['job'].pk}/",
        "/r/shop/",
        f"/r/shop/branches/{promotion.branch.pk}/",
        "/r/shop/policy/",
    )
    for path in paths:
        phone.goto(f"{live_server.url}{path}")
        assert page_width(phone) <= PHONE["width"], f"{path} is {page_width(phone)} px wide"


def test_top_bar_is_compact_on_a_small_screen(phone: Any, live_server: Any, shop: dict[str, Any]) -> None:
    phone.goto(f"{live_server.url}/jobs/")
    height = phone.evaluate("document.querySelector('header.topbar').getBoundingClientRect().height")
    assert height <= 110, f"the top bar takes {height} px"
