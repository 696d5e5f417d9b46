"""Deploying in headless Chromium, against a live server and a real worker: a release goes
to staging and production, an incident is marked, production is rolled back, and the
board and the Metrics page change with each step."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from releaseboard.deployments.models import Deployment
from tests.conftest import wait_for
from tests.deploy_flows import deployed, environments, release
from tests.test_browser_journey import _login, _wait_for_job_page, browser  # noqa: F401 - the fixture

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _deploy(page: Page, base: str, env: str, version: str) -> None:
    page.goto(f"{base}/r/shop/environments/{env}/")
    page.select_option("form.deploy-form select[name=version]", version)
    page.click("form.deploy-form button:has-text('Deploy')")


def _figure(page: Page, base: str, key: str) -> str:
    page.goto(f"{base}/r/shop/metrics/?days=30")
    return " ".join(page.inner_text(f"[data-metric='{key}'] .metric-working").split())


def test_deploy_roll_back_and_mark_an_incident_in_the_browser(
    browser,  # noqa: F811 - the fixture imported above
    live_server,
    celery_worker,
    repository,
    remote,
    developer,
    release_manager,
    ops,
    tmp_path,
):
    base = live_server.url
    root = tmp_path / "envs"
    environments(repository, root)
    release(repository, remote, developer, release_manager, "one", "0.1.0")
    release(repository, remote, developer, release_manager, "two", "0.2.0")

    rm = _login(browser, base, release_manager.username)
    # Production refuses a release that never ran on staging, and says what to do.
    _deploy(rm, base, "production", "0.1.0")
    assert "never deployed to a staging-tier environment" in rm.inner_text(".messages")

    for version in ("0.1.0", "0.2.0"):
        for env in ("staging", "production"):
            _deploy(rm, base, env, version)
            _wait_for_job_page(rm)
    assert deployed(root, Deployment.objects.get(version="0.2.0", tier="production").environment) == [
        "0.2.0",
        remote.head("master"),
    ]
    rm.goto(f"{base}/r/shop/")
    assert rm.inner_text("[data-environment='production'] .version") == "v0.2.0"
    assert _figure(rm, base, "failure_rate") == "0 caused an incident or were rolled back / 2 production deployments"

    # Ops mark the 0.2.0 deployment as an incident's cause; the board shows it open.
    ops_page = _login(browser, base, ops.username)
    ops_page.goto(f"{base}/r/shop/environments/production/")
    bad = Deployment.objects.get(version="0.2.0", tier="production")
    ops_page.click(f"tr[data-deployment='{bad.pk}'] a:has-text('Mark as incident cause')")
    ops_page.fill("textarea[name=description]", "Checkout returns 500")
    ops_page.fill("input[name=link]", "https://status.example.com/1")
    ops_page.click("button:has-text('Open incident')")
    ops_page.goto(f"{base}/r/shop/")
    assert "1 open incident" in ops_page.inner_text("[data-environment='production']")

    # They roll production back; the rollback resolves the incident and pins production.
    ops_page.goto(f"{base}/r/shop/environments/production/")
    ops_page.select_option("form.rollback-form select[name=version]", "0.1.0")
    ops_page.fill("form.rollback-form input[name=reason]", "Checkout returns 500")
    ops_page.click("form.rollback-form button:has-text('Roll back')")
    _wait_for_job_page(ops_page)
    ops_page.goto(f"{base}/r/shop/")
    card = " ".join(ops_page.inner_text("[data-environment='production']").split())
    assert re.search(r"production runs v0\.1\.0, rolled back from v0\.2\.0 by ops at .*: Checkout returns 500", card), (
        card
    )
    assert "open incident" not in card
    wait_for(lambda: deployed(root, bad.environment)[0] == "0.1.0", what="the rollback's VERSION file")

    # The Metrics page counts the rolled-back, incident-causing deployment and the rollback.
    assert (
        _figure(ops_page, base, "failure_rate") == "1 caused an incident or were rolled back / 3 production deployments"
    )
    assert _figure(ops_page, base, "rework") == "1 rollbacks or hotfix releases / 3 production deployments"
    ops_page.click("[data-metric='restore'] a")
    assert ops_page.locator("table.metric-rows tbody tr").count() == 1
