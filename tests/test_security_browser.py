"""htmx still works under the Content-Security-Policy, in headless Chromium: a job page's
live log and summary poll, swap and stop, and the browser reports no CSP violation."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from releaseboard.jobs.models import Job, JobLogLine, JobState
from releaseboard.releases.models import Repository
from tests.conftest import PASSWORD
from tests.test_browser_journey import browser  # noqa: F401  (the Chromium fixture, shared)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_live_log_polls_under_the_csp_without_violations(browser: Browser, live_server, db) -> None:  # noqa: F811
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    repository = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    job = Job.objects.create(
        kind="sync",
        title="Refresh shop",
        scope_id=repository.pk,
        scope_name=repository.name,
        state=JobState.RUNNING,
        started_at=timezone.now(),
        log_lines=1,
    )
    JobLogLine.objects.create(job=job, seq=1, text="$ git fetch\n")

    page = browser.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []
    # (No favicon is served; the browser's request for one is not our problem.)
    page.on(
        "console",
        lambda m: (
            problems.append(f"{m.text} {m.location.get('url', '')}")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    # Every violation is also a DOM event; collect them in the page to read at the end.
    page.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*accounts/login).*$"))

    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    assert page.evaluate("typeof htmx !== 'undefined' && htmx.config.allowEval === false")
    page.wait_for_selector("text=$ git fetch")
    # A line written now reaches the page through the log poller (hx-get every 500 ms).
    JobLogLine.objects.create(job=job, seq=2, text="From /srv/git/shop.git\n")
    Job.objects.filter(pk=job.pk).update(log_lines=2)
    # The output folds into its git step (closed): it is in the page, not shown.
    page.wait_for_selector("text=From /srv/git/shop.git", state="attached")
    # The job ends: the poller swaps in the final state badge (out of band) and stops.
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED, finished_at=timezone.now())
    page.wait_for_selector(f"#job-{job.pk}-state:has-text('Succeeded')")

    page.goto(f"{live_server.url}/r/shop/")
    page.wait_for_timeout(3500)  # one round of the board's own poller
    violations = page.evaluate("window.__csp")
    assert violations == [], violations
    assert [p for p in problems if "Content Security Policy" in p or "Refused" in p] == [], problems
    assert problems == [], problems
