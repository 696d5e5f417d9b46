"""One whole release cycle in headless Chromium, against a live server and a real worker.

A developer requests a branch, pushes to it with plain git and requests promotion; a
release manager promotes it to staging and then to master; Ops reads the audit log.
It saves a board screenshot; with RELEASEBOARD_UPDATE_SCREENSHOT=1 it replaces the one the
README shows (docs/board.png), else it writes to the test's temp dir and changes nothing
in the checkout.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from releaseboard.jobs.models import Job
from releaseboard.releases import services
from releaseboard.releases.models import Branch, Promotion, PromotionState
from tests.conftest import PASSWORD, wait_for, wait_for_job
from tests.gitrepo import CALC

if TYPE_CHECKING:  # imported in the fixture: without Chromium the tests skip before Playwright loads
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "board.png"
# Chromium's own background connections are refused on a closed network; keep it quiet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("RELEASEBOARD_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM must still work.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _login(browser: Browser, base: str, username: str) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*accounts/login).*$"))
    return page


def _wait_for_job_page(page: Page, state: str = "Succeeded") -> None:
    # The state badge is swapped in by the live log poller when the job ends.
    page.wait_for_selector(f"span[id$='-state']:has-text('{state}')", timeout=90_000)


def test_a_release_cycle_in_the_browser(
    browser, live_server, celery_worker, repository, remote, developer, release_manager, ops, tmp_path
):
    base = live_server.url
    wait_for_job(services.refresh(repository, actor=developer))

    # A developer requests a branch with the form, and sees the job create it.
    dev = _login(browser, base, developer.username)
    dev.goto(f"{base}/r/{repository.name}/")
    dev.click("text=Request branch")
    dev.check("input[name=kind][value=feature]")
    dev.fill("input[name=name]", "Bad Name")
    dev.fill("textarea[name=purpose]", "Let customers pay with a saved card")
    dev.click("button[type=submit]:has-text('Request branch')")
    assert dev.locator(".errorlist, .error").first.inner_text()  # the inline error for an invalid name
    dev.fill("input[name=name]", "saved-cards")
    dev.click("button[type=submit]:has-text('Request branch')")
    _wait_for_job_page(dev)
    assert remote.head("feature/saved-cards") == remote.head("staging")

    # They push their work with plain git, outside Releaseboard.
    remote.commit_on("feature/saved-cards", {"cards.py": "def saved():\n    return []\n"}, "Saved cards")

    # They request promotion; the merge result is tested and its log streams in.
    dev.goto(f"{base}/r/{repository.name}/")
    dev.click("[data-branch='feature/saved-cards'] a.branch-name")
    dev.click("text=Request promotion")
    dev.fill("input[name=title]", "Saved cards at checkout")
    dev.fill("textarea[name=description]", "Customers can reuse a card.")
    dev.click("button[type=submit]:has-text('Request promotion')")
    dev.wait_for_selector(".log:has-text('test_add')", timeout=90_000)
    _wait_for_job_page(dev)
    assert dev.locator("text=Promote to staging").count() == 0  # developers cannot promote

    # A release manager promotes it to staging...
    rm = _login(browser, base, release_manager.username)
    rm.goto(dev.url)
    rm.click("button:has-text('Promote to staging')")
    rm.wait_for_load_state()
    promotion = Promotion.objects.get(branch__name="feature/saved-cards")
    wait_for(lambda: Promotion.objects.get(pk=promotion.pk).state == PromotionState.PROMOTED, what="the promotion")
    rm.reload()
    assert rm.locator(".badge:has-text('Promoted')").count() >= 1
    assert "Releaseboard-Promotion:" in remote.message("staging")

    # ...then to master, from the release preview.
    rm.goto(f"{base}/r/{repository.name}/")
    rm.click("a:has-text('Promote to master')")
    assert rm.input_value("input[name=version]") == "0.1.0"
    assert rm.locator("text=Saved cards at checkout").count() >= 1
    rm.click("button:has-text('Promote to master')")
    _wait_for_job_page(rm)
    assert remote.head("master") == remote.head("staging")
    assert remote.tag_target("v0.1.0") == remote.head("master")

    # The next cycle on the board, for the README: two features that touch the same line
    # (the radar shows them red) and a hotfix.
    for kind, name, purpose, files in (
        (
            "feature",
            "discounts",
            "Percentage discounts at checkout",
            {"calc.py": CALC.replace("a + b", "(a + b) * 0.9")},
        ),
        ("feature", "coupons", "Coupon codes", {"calc.py": CALC.replace("a + b", "a + b - 1")}),
        ("hotfix", "rounding", "Round totals half-up", {"rounding.py": "ROUND = 2\n"}),
    ):
        branch = services.request_branch(repository, actor=developer, kind=kind, name=name, purpose=purpose)
        wait_for_job(Job.objects.get(kind="create_branch", subject_id=branch.pk))
        remote.commit_on(branch.name, files, purpose)
    wait_for_job(services.refresh(repository, actor=developer))
    # Each asks for promotion, so the board shows their states: tests failed, ready to promote.
    for name in ("feature/discounts", "hotfix/rounding"):
        asked = services.request_promotion(Branch.objects.get(name=name), actor=developer, title=name)
        wait_for_job(Job.objects.filter(kind="test_promotion", subject_id=asked.pk).latest("id"))
    rm.goto(f"{base}/r/{repository.name}/")
    rm.wait_for_selector("[data-branch='hotfix/rounding']", timeout=60_000)
    screenshot = SCREENSHOT if os.environ.get("RELEASEBOARD_UPDATE_SCREENSHOT") == "1" else tmp_path / "board.png"
    rm.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0

    # Ops reads the audit log and finds the promotion and the release.
    ops_page = _login(browser, base, ops.username)
    ops_page.goto(f"{base}/audit/")
    text = ops_page.inner_text("main")
    for action in ("branch.requested", "promotion.requested", "promotion.promoted", "release.released"):
        assert action in text
    assert release_manager.username in text and developer.username in text
