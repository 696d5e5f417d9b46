"""Defects a new user hit on the pages (issue 13): each test failed before its fix."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from releaseboard.jobs.models import Job
from releaseboard.policy import service as policy
from releaseboard.radar.models import PairMerge, pair_key
from releaseboard.releases import services
from releaseboard.releases.models import Branch, Promotion, Repository, TestResult, TestRun
from releaseboard.roles import Role
from tests.conftest import PASSWORD

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


# -- 4. Refusals ------------------------------------------------------------------------------


def test_refused_page_has_the_layout_the_reason_and_a_way_back(
    client: Client, shop: Repository, ops: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client.force_login(ops)
    board = reverse("web:board", args=["shop"])
    with caplog.at_level(logging.INFO):
        response = client.get(reverse("web:branch_request", args=["shop"]), HTTP_REFERER=f"http://testserver{board}")
    assert response.status_code == 403
    page = response.content.decode()
    assert 'class="topbar"' in page
    assert "You need a role that may request branch" in page
    assert f'href="http://testserver{board}"' in page  # back where the user came from
    assert reverse("web:repository_list") in page
    refusals = [r for r in caplog.records if r.name == "django.request"]
    assert refusals and all(r.exc_info is None for r in refusals)


def test_refused_page_ignores_a_foreign_referer(client: Client, shop: Repository, ops: Any) -> None:
    client.force_login(ops)
    response = client.get(reverse("web:branch_request", args=["shop"]), HTTP_REFERER="https://evil.example/x")
    assert response.status_code == 403
    assert "evil.example" not in response.content.decode()


def test_promote_button_is_disabled_with_the_reason_during_a_lock(
    client: Client, shop: Repository, developer: Any, release_manager: Any
) -> None:
    branch = Branch.objects.create(
        repository=shop, name="feature/login", kind="feature", head_sha="c" * 40, requested_by=developer
    )
    promotion = Promotion.objects.create(
        repository=shop,
        branch=branch,
        title="Login form",
        requested_by=developer,
        staging_sha="b" * 40,
        branch_sha="c" * 40,
        merge_sha="d" * 40,
        merge_check="clean",
    )
    TestRun.objects.create(
        repository=shop, promotion=promotion, commit_sha="d" * 40, tree_sha="e" * 40, result=TestResult.PASSED
    )
    policy.lock(shop, actor=release_manager, reason="Database migration in progress")
    client.force_login(release_manager)
    page = client.get(reverse("web:promotion_detail", args=["shop", promotion.pk])).content.decode()
    assert re.search(r"<button[^>]*disabled[^>]*>Promote to staging</button>", page)
    assert "Database migration in progress" in page
    assert reverse("web:promotion_promote", args=["shop", promotion.pk]) not in page


# -- 5. Conflict radar --------------------------------------------------------------------------


def _conflicting_with_staging(shop: Repository, developer: Any) -> Branch:
    branch = Branch.objects.create(
        repository=shop, name="feature/login", kind="feature", head_sha="c" * 40, requested_by=developer
    )
    Branch.objects.create(repository=shop, name="feature/cart", kind="feature", head_sha="f" * 40)
    low, high = pair_key("b" * 40, "c" * 40)
    PairMerge.objects.create(
        repository=shop, low_sha=low, high_sha=high, conflicts=[{"path": "app.py", "kind": "content"}]
    )
    for other in ("c" * 40, "b" * 40):
        low, high = pair_key("f" * 40, other)
        PairMerge.objects.create(repository=shop, low_sha=low, high_sha=high, conflicts=[])
    return branch


def test_radar_summary_counts_a_conflict_with_staging(client: Client, shop: Repository, developer: Any) -> None:
    _conflicting_with_staging(shop, developer)
    client.force_login(developer)
    page = client.get(reverse("web:board", args=["shop"])).content.decode()
    assert "no conflicts" not in page
    assert "1 branch conflicts with staging" in page


def test_radar_columns_are_named_after_branches(client: Client, shop: Repository, developer: Any) -> None:
    _conflicting_with_staging(shop, developer)
    client.force_login(developer)
    page = client.get(reverse("web:board", args=["shop"])).content.decode()
    head = page.split('<table class="table radar-matrix"')[1].split("</thead>")[0]
    assert "<span>staging</span>" in head
    assert "<span>feature/cart</span>" in head
    assert '<th scope="col">#</th>' not in head


def test_radar_staging_cell_says_what_the_branch_owner_does(client: Client, shop: Repository, developer: Any) -> None:
    branch = _conflicting_with_staging(shop, developer)
    staging = Branch.objects.get(repository=shop, name="staging")
    client.force_login(developer)
    page = client.get(reverse("web:radar_cell", args=["shop", branch.pk, staging.pk])).content.decode()
    assert "Whichever lands in staging second" not in page
    assert "cannot be promoted until its owner merges staging into it" in page


# -- 8. Who may request a promotion ------------------------------------------------------------


@pytest.fixture
def login_branch(shop: Repository, developer: Any) -> Branch:
    return Branch.objects.create(
        repository=shop, name="feature/login", kind="feature", head_sha="c" * 40, requested_by=developer
    )


@pytest.fixture
def other_developer(db: None) -> Any:
    user = User.objects.create_user("dev2", "dev2@example.com", PASSWORD)
    user.groups.add(Group.objects.get_or_create(name=Role.DEVELOPER.value)[0])
    return user


def test_service_refuses_a_promotion_request_from_another_developer(login_branch: Branch, other_developer: Any) -> None:
    with pytest.raises(PermissionDenied, match="Only the developer who requested feature/login"):
        services.request_promotion(login_branch, actor=other_developer, title="Not mine")
    assert not Promotion.objects.exists()


def test_owner_and_release_manager_may_request_a_promotion(
    login_branch: Branch, developer: Any, release_manager: Any
) -> None:
    mine = services.request_promotion(login_branch, actor=developer, title="Mine")
    assert mine.requested_by == developer
    Promotion.objects.filter(pk=mine.pk).update(state="closed")
    assert services.request_promotion(login_branch, actor=release_manager, title="For the owner").pk


def test_another_developer_gets_the_reason_on_the_page_and_the_form_is_refused(
    client: Client, login_branch: Branch, other_developer: Any
) -> None:
    client.force_login(other_developer)
    page = client.get(reverse("web:branch_detail", args=["shop", login_branch.pk])).content.decode()
    assert re.search(r"<button[^>]*disabled[^>]*>Request promotion</button>", page)
    assert "Only the developer who requested feature/login (dev) or a release manager" in page
    form_url = reverse("web:promotion_request", args=["shop", login_branch.pk])
    assert client.get(form_url).status_code == 403
    assert client.post(form_url, {"title": "Not mine", "idempotency_key": KEY}).status_code == 403
    assert not Promotion.objects.exists()


def test_owner_sees_the_rule_and_an_enabled_button(client: Client, login_branch: Branch, developer: Any) -> None:
    client.force_login(developer)
    page = client.get(reverse("web:branch_detail", args=["shop", login_branch.pk])).content.decode()
    assert "Who may request its promotion: dev (who requested it) or a release manager." in page
    assert reverse("web:promotion_request", args=["shop", login_branch.pk]) in page


# -- 9. The branch page after a push ---------------------------------------------------------


def test_update_from_staging_is_offered_only_when_behind(
    client: Client, shop: Repository, login_branch: Branch, developer: Any
) -> None:
    client.force_login(developer)
    url = reverse("web:branch_detail", args=["shop", login_branch.pk])
    Branch.objects.filter(pk=login_branch.pk).update(behind=0, ahead=1)
    assert "Update from staging" not in client.get(url).content.decode()
    Branch.objects.filter(pk=login_branch.pk).update(behind=2)
    assert "Update from staging" in client.get(url).content.decode()


def test_branch_page_says_when_the_head_was_read_and_follows_a_refresh(
    client: Client, shop: Repository, login_branch: Branch, developer: Any
) -> None:
    Repository.objects.filter(pk=shop.pk).update(synced_at=timezone.now() - timedelta(seconds=20))
    client.force_login(developer)
    url = reverse("web:branch_detail", args=["shop", login_branch.pk])
    page = client.get(url).content.decode()
    assert "as of the last refresh" in page and "just now" in page
    assert 'hx-trigger="every 5s"' in page
    # A refresh moves the head: the polled fragment shows the new one.
    Branch.objects.filter(pk=login_branch.pk).update(head_sha="9" * 40)
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "9" * 40 in fragment and "<html" not in fragment


def test_refresh_from_the_branch_page_comes_back_to_it(
    client: Client, shop: Repository, login_branch: Branch, developer: Any
) -> None:
    client.force_login(developer)
    url = reverse("web:branch_detail", args=["shop", login_branch.pk])
    assert "Refresh from the remote" in client.get(url).content.decode()
    response = client.post(reverse("web:repository_refresh", args=["shop"]), {"idempotency_key": KEY, "next": url})
    assert response["Location"] == url
    away = client.post(
        reverse("web:repository_refresh", args=["shop"]),
        {"idempotency_key": "1b1c7a4e-3f52-4d4f-9a35-1f6f0c2d8e11", "next": "https://evil.example/"},
    )
    assert away["Location"] == reverse("web:board", args=["shop"])


# -- 1. Promote to master lists what it releases --------------------------------------------------


@pytest.fixture
def promoted(shop: Repository) -> Repository:
    """Staging just moved to "c..." by a promotion; the last refresh saw it at "b..."."""
    Branch.objects.filter(repository=shop, name="staging").update(head_sha="c" * 40)
    Repository.objects.filter(pk=shop.pk).update(
        staging_ahead=[{"sha": "b" * 40, "subject": "Older work", "author": "Ada", "promotion": ""}]
    )
    TestRun.objects.create(repository=shop, commit_sha="c" * 40, tree_sha="e" * 40, result=TestResult.PASSED)
    return shop


def test_release_page_waits_for_the_commits_of_the_head_being_released(
    client: Client, promoted: Repository, release_manager: Any
) -> None:
    client.force_login(release_manager)
    url = reverse("web:release_new", args=["shop"])
    page = client.get(url).content.decode()
    assert "Older work" not in page
    assert "Reading the commits of staging cccccccccc" in page
    assert re.search(r'<button type="submit" id="release-submit" class="primary" disabled', page)
    client.get(url)
    assert Job.objects.filter(kind="sync").count() == 1  # one refresh per staging head, however often it is shown
    # The refresh records the list at the new head: the poller shows it and enables the button.
    Repository.objects.filter(pk=promoted.pk).update(
        staging_ahead=[
            {"sha": "c" * 40, "subject": "Promote feature/login", "author": "Releaseboard", "promotion": "7"},
            {"sha": "b" * 40, "subject": "Older work", "author": "Ada", "promotion": ""},
        ]
    )
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Promote feature/login" in fragment and "Older work" in fragment
    assert 'id="release-submit"' in fragment and "hx-swap-oob" in fragment
    assert "disabled" not in fragment.split('id="release-submit"')[1].split(">")[0]


def test_release_is_refused_while_the_commit_list_is_stale(
    client: Client, promoted: Repository, release_manager: Any
) -> None:
    client.force_login(release_manager)
    response = client.post(
        reverse("web:release_new", args=["shop"]), {"version": "0.1.0", "notes": "", "idempotency_key": KEY}
    )
    assert response.status_code == 200
    assert "Reading the commits of staging" in response.content.decode()
    assert not promoted.releases.exists()


# -- 11. Small things ---------------------------------------------------------------------------


def test_a_moment_ago_reads_just_now(client: Client, shop: Repository, developer: Any) -> None:
    Job.objects.create(kind="sync", title="Refresh shop", scope_name="shop")
    client.force_login(developer)
    page = client.get(reverse("web:job_list")).content.decode()
    assert "just now" in page and "0\xa0minutes ago" not in page and "0 minutes ago" not in page


def test_a_repository_without_releases_says_so(client: Client, shop: Repository, developer: Any) -> None:
    client.force_login(developer)
    for url in (reverse("web:board", args=["shop"]), reverse("web:repository_list")):
        page = client.get(url).content.decode()
        assert "no release yet" in page and "v0.0.0" not in page


def test_promotion_request_message_does_not_go_stale(client: Client, login_branch: Branch, developer: Any) -> None:
    client.force_login(developer)
    response = client.post(
        reverse("web:promotion_request", args=["shop", login_branch.pk]),
        {"title": "Login", "description": "", "idempotency_key": KEY},
        follow=True,
    )
    # The flash message stays on the page while the state beside it moves on: it says
    # only what was done, and the live state says how the test goes.
    flash = re.search(r'<li class="message success">([^<]*)</li>', response.content.decode())
    assert flash and flash.group(1).startswith("Promotion #") and "tested" not in flash.group(1)


def test_every_page_names_a_favicon_that_exists(client: Client, shop: Repository, developer: Any) -> None:
    client.force_login(developer)
    page = client.get(reverse("web:board", args=["shop"])).content.decode()
    assert re.search(r'<link rel="icon" href="[^"]*favicon\.svg"', page)
    assert finders.find("favicon.svg")
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith("favicon.svg")


def test_policy_forms_use_the_site_form_style(client: Client, shop: Repository, release_manager: Any) -> None:
    client.force_login(release_manager)
    page = client.get(reverse("web:policy", args=["shop"])).content.decode()
    assert page.count('class="stacked"') >= 2
    assert '<div class="field' in page  # the freeze window form through web/_fields.html
    assert "<p><label" not in page  # no bare as_p rendering


def _luminance(colour: str) -> float:
    channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_text_colours_have_a_contrast_of_at_least_4_5() -> None:
    css = (Path(__file__).resolve().parent.parent / "static" / "releaseboard.css").read_text()
    var = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", css))
    pairs = [
        ("muted", "paper"),
        ("muted", "panel"),
        ("muted", "neutral-bg"),  # neutral badges
        ("accent", "panel"),  # links
        ("accent", "paper"),
        ("good", "good-bg"),
        ("bad", "bad-bg"),
        ("busy", "busy-bg"),
        ("ink", "neutral-bg"),
    ]
    low = {f"{a} on {b}": round(_contrast(var[a], var[b]), 2) for a, b in pairs if _contrast(var[a], var[b]) < 4.5}
    assert low == {}
    assert _contrast("#ffffff", var["accent"]) >= 4.5  # primary buttons
    assert _contrast(var["muted"], "#eceff4") >= 4.5  # text in the board's lanes


# -- The branch timeline ----------------------------------------------------------------------


def test_branch_page_shows_its_timeline(client: Client, shop: Repository, developer: Any, release_manager: Any) -> None:
    branch = Branch.objects.create(
        repository=shop,
        name="feature/login",
        kind="feature",
        head_sha="c" * 40,
        base_sha="b" * 40,
        requested_by=developer,
    )
    promotion = Promotion.objects.create(
        repository=shop, branch=branch, title="Login", requested_by=developer, merge_sha="d" * 40
    )
    TestRun.objects.create(
        repository=shop, promotion=promotion, commit_sha="d" * 40, tree_sha="e" * 40, result=TestResult.PASSED
    )
    Promotion.objects.filter(pk=promotion.pk).update(
        state="promoted", promoted_at=timezone.now(), promoted_sha="f" * 40, promoted_by=release_manager
    )
    client.force_login(developer)
    page = client.get(reverse("web:branch_detail", args=["shop", branch.pk])).content.decode()
    timeline = page.split('<ol class="timeline"')[1].split("</ol>")[0]
    names = re.findall(r'<li class="step( done| failed)?">\s*<span class="step-name">([^<]+)</span>', timeline)
    assert [(n, bool(d.strip())) for d, n in names] == [
        ("Requested", True),
        ("Created", True),
        ("Pushed", True),
        ("Tested", True),
        ("Promoted", True),
        ("Released", False),
    ]
    assert "to staging as ffffffffff" in timeline
