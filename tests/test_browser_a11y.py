"""Accessibility in headless Chromium: every page passes axe-core with no serious or
critical violation (under the site's own CSP), and the main flow works from the keyboard.

axe-core is vendored under tests/vendor/axe-core (with its licence) and injected by
Playwright's evaluate, which the page's Content-Security-Policy does not apply to.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from releaseboard.jobs.models import Job, JobLogLine, JobState
from releaseboard.radar.models import PairMerge, pair_key
from releaseboard.releases.models import Branch, Promotion, Repository, TestResult, TestRun
from releaseboard.review.models import PromotionReview, TestReport
from tests.conftest import PASSWORD
from tests.test_browser_journey import browser  # noqa: F401  (the Chromium fixture, shared)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = (Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js").read_text()
DOCS = Path(__file__).resolve().parent.parent / "docs"
PATCH = "@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a + b\n+    return (a + b) * 0.9\n"


@pytest.fixture
def shop(db: None) -> dict[str, Any]:
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    repository = Repository.objects.create(
        name="shop", remote_url="/srv/git/shop.git", test_command="python3 run_tests.py", synced_at=timezone.now()
    )
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha="b" * 40)
    branch = Branch.objects.create(
        repository=repository,
        name="feature/discounts",
        kind="feature",
        head_sha="c" * 40,
        base_sha="b" * 40,
        purpose="Percentage discounts at checkout",
        behind=0,
        ahead=1,
    )
    other = Branch.objects.create(repository=repository, name="feature/coupons", kind="feature", head_sha="f" * 40)
    for low, high, conflicts in (
        (*pair_key("c" * 40, "f" * 40), [{"path": "cart.py", "kind": "content"}]),
        (*pair_key("b" * 40, "c" * 40), []),
        (*pair_key("b" * 40, "f" * 40), []),
    ):
        PairMerge.objects.create(repository=repository, low_sha=low, high_sha=high, conflicts=conflicts)
    promotion = Promotion.objects.create(
        repository=repository,
        branch=branch,
        title="Percentage discounts at checkout",
        staging_sha="b" * 40,
        branch_sha="c" * 40,
        merge_sha="d" * 40,
        merge_check="clean",
    )
    job = Job.objects.create(
        kind="test_promotion",
        title="Test feature/discounts merged into staging",
        scope_id=repository.pk,
        scope_name=repository.name,
        subject_type="promotion",
        subject_id=promotion.pk,
        state=JobState.FAILED,
        reason="tests_failed",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        log_lines=4,
    )
    for seq, text in enumerate(
        ["\n== Fetch ==\n", "$ git fetch origin\n", "From /srv/git/shop.git\n", "\x1b[31mFAILED\x1b[0m test_total\n"],
        start=1,
    ):
        JobLogLine.objects.create(job=job, seq=seq, text=text)
    TestReport.objects.create(
        job=job,
        data={
            "tests": 4,
            "failures": 1,
            "errors": 0,
            "skipped": 0,
            "failed": [
                {
                    "name": "test_cart.CartTest.test_total",
                    "kind": "failure",
                    "message": "AssertionError: 4 != 5",
                    "detail": "Traceback",
                }
            ],
        },
    )
    TestRun.objects.create(
        repository=repository,
        promotion=promotion,
        commit_sha="d" * 40,
        tree_sha="e" * 40,
        result=TestResult.FAILED,
        job=job,
    )
    PromotionReview.objects.create(
        promotion=promotion,
        staging_sha="b" * 40,
        branch_sha="c" * 40,
        merge_sha="d" * 40,
        data={
            "commits": [
                {"sha": "c" * 40, "author": "Dev One", "email": "", "at": 0, "subject": "Percentage discounts"}
            ],
            "files": [{"path": "cart.py", "added": 1, "deleted": 1, "binary": False, "patch": PATCH, "omitted": ""}],
            "conflicts": [],
            "truncated": False,
        },
    )
    return {"repository": repository, "branch": branch, "other": other, "promotion": promotion, "job": job}


@pytest.fixture
def page(browser: Any, live_server: Any, shop: dict[str, Any]) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(f"{live_server.url}/accounts/login/")
    tab.fill("input[name=username]", "root")
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(re.compile(r"^(?!.*accounts/login).*$"))
    yield tab
    context.close()


def serious_violations(tab: Any) -> list[str]:
    if not tab.evaluate("typeof window.axe !== 'undefined'"):
        tab.evaluate(AXE)
    result = tab.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_every_page_passes_axe(page: Any, live_server: Any, shop: dict[str, Any], browser: Any) -> None:  # noqa: F811
    promotion, branch, job = shop["promotion"], shop["branch"], shop["job"]
    paths = [
        "/",
        "/r/shop/",
        f"/r/shop/branches/{branch.pk}/",
        "/r/shop/branches/new/",
        f"/r/shop/branches/{branch.pk}/promote/",
        f"/r/shop/promotions/{promotion.pk}/",
        f"/r/shop/promotions/{promotion.pk}/files/0/",
        "/r/shop/release/",
        "/r/shop/releases/",
        "/r/shop/copy-master/",
        "/r/shop/policy/",
        f"/r/shop/radar/{branch.pk}/{shop['other'].pk}/",
        "/jobs/",
        f"/jobs/{job.pk}/",
        "/jobs/attention/",
        "/audit/",
        "/audit/verify/",
    ]
    problems = {}
    for path in paths:
        page.goto(f"{live_server.url}{path}")
        found = serious_violations(page)
        if found:
            problems[path] = found
    anonymous = browser.new_page()
    anonymous.goto(f"{live_server.url}/accounts/login/")
    if found := serious_violations(anonymous):
        problems["/accounts/login/"] = found
    anonymous.close()
    assert problems == {}, "\n".join(f"{path}: {found}" for path, found in problems.items())


def test_refusal_page_passes_axe(browser: Any, live_server: Any, shop: dict[str, Any]) -> None:  # noqa: F811
    User.objects.create_user("nobody", "nobody@example.com", PASSWORD)
    tab = browser.new_page()
    tab.goto(f"{live_server.url}/accounts/login/")
    tab.fill("input[name=username]", "nobody")
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_load_state()
    response = tab.goto(f"{live_server.url}/r/shop/branches/new/")
    assert response.status == 403
    assert "You need a role" in tab.inner_text("main")
    assert serious_violations(tab) == []
    tab.close()


def test_request_branch_with_the_keyboard_alone(page: Any, live_server: Any, shop: dict[str, Any]) -> None:
    page.goto(f"{live_server.url}/r/shop/")
    # Tab from the top of the page to the "Request branch" link, as a keyboard user would.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Request branch":
            break
    else:
        pytest.fail("Request branch is not reachable with Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/branches/new/$"))
    page.focus("input[name=kind][value=feature]")
    page.keyboard.press("Tab")  # to the short name
    page.keyboard.type("feature/keyboard-only")
    assert page.inner_text("#branch-final-name") == "feature/keyboard-only"  # the prefix is not doubled
    page.keyboard.press("Tab")  # to the purpose
    page.keyboard.type("Typed without a mouse")
    page.keyboard.press("Tab")  # past the ticket link (optional)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Request branch"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/jobs/\d+/$"))
    assert Branch.objects.filter(name="feature/keyboard-only").exists()


def test_radar_cell_names_its_column_and_opens_its_files_below_the_matrix(
    page: Any, live_server: Any, shop: dict[str, Any]
) -> None:
    board = f"{live_server.url}/r/shop/"
    page.goto(board)
    cell = page.locator('.radar-matrix tr[data-branch="feature/discounts"] td a.bad')
    assert cell.inner_text() == "1"
    # The cells carry no title in the page: it comes from the column when pointed at or focused.
    assert cell.get_attribute("title") is None
    cell.hover()
    assert cell.get_attribute("title") == "feature/coupons"
    against_staging = page.locator('.radar-matrix tr[data-branch="feature/coupons"] td a')
    against_staging.focus()
    assert against_staging.get_attribute("title") == "staging"
    # Enter on a cell loads its files into the panel below, in place: same page, same history.
    cell.focus()
    page.keyboard.press("Enter")
    page.locator("#radar-detail .radar-detail").wait_for()
    assert "cart.py" in page.inner_text("#radar-detail")
    assert page.url == board
    assert serious_violations(page) == []


def test_promotion_page_shows_state_diff_and_failure_summary(
    page: Any, live_server: Any, shop: dict[str, Any], tmp_path: Path
) -> None:
    promotion = shop["promotion"]
    page.goto(f"{live_server.url}/r/shop/promotions/{promotion.pk}/")
    assert page.inner_text("[data-phase]").strip() == "Tests failed"
    assert "What next:" in page.inner_text("#promotion-status")
    assert page.locator("table.diff tr.diff-add .k").count() >= 1  # highlighted by Pygments
    assert "test_cart.CartTest.test_total" in page.inner_text(".failure-summary")
    assert page.locator(".log details.log-git").count() == 1  # the git step folds away
    assert page.locator(".log .ansi-fg-red").inner_text() == "FAILED"
    # The README's screenshot is rewritten only on request: a test run leaves the checkout as it was.
    shots = DOCS if os.environ.get("RELEASEBOARD_UPDATE_SCREENSHOTS") == "1" else tmp_path
    page.screenshot(path=str(shots / "promotion.png"), full_page=True)
    assert (shots / "promotion.png").stat().st_size > 10_000


def test_live_log_follows_its_tail_until_the_reader_scrolls_up(
    page: Any, live_server: Any, shop: dict[str, Any]
) -> None:
    repository = shop["repository"]
    job = Job.objects.create(
        kind="test_staging",
        title="Test staging",
        scope_id=repository.pk,
        scope_name=repository.name,
        state=JobState.RUNNING,
        started_at=timezone.now(),
    )
    JobLogLine.objects.create(job=job, seq=1, text="".join(f"line {i}\n" for i in range(200)))
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    log = f"#log-{job.pk}"
    at_end = (
        f"(() => {{ const l = document.querySelector('{log}'); "
        "return l.scrollHeight - l.scrollTop - l.clientHeight < 30; })()"
    )
    assert page.evaluate(at_end)
    JobLogLine.objects.create(job=job, seq=2, text="".join(f"more {i}\n" for i in range(100)))
    page.wait_for_selector("text=more 99")
    page.wait_for_function(at_end)
    # The reader scrolls up: new lines arrive, the view stays where the reader is.
    page.evaluate(f"document.querySelector('{log}').scrollTop = 0")
    page.wait_for_timeout(200)
    JobLogLine.objects.create(job=job, seq=3, text="".join(f"later {i}\n" for i in range(100)))
    page.wait_for_selector("text=later 99")
    page.wait_for_timeout(300)
    assert page.evaluate(f"document.querySelector('{log}').scrollTop") < 50
