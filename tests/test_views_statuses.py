"""CI statuses on the pages: the promotion page lists each context of the branch head and
the merge commit with its state, its description and a link to CI, and says why a red
required one blocks; the board shows a badge per context on each card; Promote to master
shows the staging head's contexts and refuses while a required one is not green. A
target URL that is not http(s) is never a link, and the pages read all statuses in a
constant number of queries."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from releaseboard.integrations import statuses
from releaseboard.integrations.models import CommitStatus, GateTarget, RequiredContext
from releaseboard.jobs.models import Job, JobState
from releaseboard.releases.models import Branch, Promotion, PromotionState, Repository

pytestmark = pytest.mark.django_db

HEAD, MERGE, STAGING = "c" * 40, "d" * 40, "b" * 40
SCAN = "https://scanner.example.com/7"


@pytest.fixture
def shop(db: None) -> Repository:
    repository = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha=STAGING)
    return repository


@pytest.fixture
def promotion(shop: Repository, developer: Any) -> Promotion:
    branch = Branch.objects.create(repository=shop, name="feature/login", kind="feature", head_sha=HEAD)
    return Promotion.objects.create(
        repository=shop,
        branch=branch,
        title="Login",
        requested_by=developer,
        merge_check="clean",
        branch_sha=HEAD,
        merge_sha=MERGE,
        staging_sha=STAGING,
    )


def _status(repository: Repository, sha: str, context: str, state: str, url: str = "", description: str = "") -> None:
    # Straight to the table, as an older row or a direct write could have left it.
    CommitStatus.objects.create(
        repository=repository, sha=sha, context=context, state=state, target_url=url, description=description
    )


def _require(repository: Repository, context: str, target: str) -> None:
    RequiredContext.objects.create(repository=repository, context=context, applies_to=target)


def _page(client: Client, user: Any, url: str) -> str:
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_the_promotion_page_says_which_ci_to_open_for_a_failing_required_context(
    client: Client, shop: Repository, promotion: Promotion, developer: Any
) -> None:
    _require(shop, "security/scan", GateTarget.BRANCH_HEAD)
    _require(shop, "ci/build", GateTarget.MERGE_COMMIT)
    _status(shop, HEAD, "security/scan", "pending", "https://scanner.example.com/6", "queued")
    _status(shop, HEAD, "security/scan", "failure", SCAN, "2 high findings")  # the latest counts
    _status(shop, HEAD, "lint", "success", "https://ci.example.com/lint/1")
    page = _page(client, developer, reverse("web:promotion_detail", args=["shop", promotion.pk]))
    assert "Checks" in page
    # The same sentence the promote button's refusal gives.
    assert statuses.evaluate(shop, GateTarget.BRANCH_HEAD, HEAD).explain() in page
    assert f'<a href="{SCAN}" rel="noopener noreferrer" target="_blank">Open security/scan in CI</a>' in page
    assert "https://scanner.example.com/6" not in page, "only the latest status of a context counts"
    assert (
        f"Required statuses on the branch head {HEAD[:10]}: security/scan is failure: 2 high findings — open {SCAN}."
        in page
    )
    assert 'data-context="lint"' in page and "reported only" in page and "Open lint in CI" in page
    # The merge commit's required context has not reported: said so, not as a failure.
    assert f"Required statuses on the tested merge commit {MERGE[:10]}: ci/build has not reported yet." in page
    assert "not reported" in page


def test_the_promotion_page_says_when_its_promote_job_waits_for_a_status(
    client: Client, shop: Repository, promotion: Promotion, release_manager: Any
) -> None:
    _require(shop, "ci/build", GateTarget.MERGE_COMMIT)
    _status(shop, MERGE, "ci/build", "pending", "https://ci.example.com/b/9", "running")
    Promotion.objects.filter(pk=promotion.pk).update(state=PromotionState.PROMOTING)
    job = Job.objects.create(
        kind="promotion.promote",
        title="Promote",
        subject_type="promotion",
        subject_id=promotion.pk,
        scope_id=shop.pk,
        state=JobState.QUEUED,
        waits=2,
        message="Required statuses on the tested merge commit: ci/build is pending.",
    )
    page = _page(client, release_manager, reverse("web:promotion_detail", args=["shop", promotion.pk]))
    job_link = reverse("web:job_detail", args=[job.pk])
    assert f'Its promote job <a href="{job_link}">#{job.pk}</a> waits for a required status' in page
    assert 'data-phase="waiting"' in page
    assert "… pending" in page and "Open ci/build in CI" in page


def test_a_promotion_without_statuses_shows_no_checks_section(
    client: Client, shop: Repository, promotion: Promotion, developer: Any
) -> None:
    page = _page(client, developer, reverse("web:promotion_detail", args=["shop", promotion.pk]))
    assert 'id="checks-title"' not in page and "Open " not in page


def test_the_board_shows_a_badge_per_context_linking_to_ci(
    client: Client, shop: Repository, promotion: Promotion, developer: Any
) -> None:
    _require(shop, "security/scan", GateTarget.BRANCH_HEAD)
    _status(shop, HEAD, "security/scan", "failure", SCAN, "2 high findings")
    _status(shop, MERGE, "ci/build", "success", "https://ci.example.com/b/1")
    _status(shop, STAGING, "ci/e2e", "pending")
    page = _page(client, developer, reverse("web:board", args=["shop"]))
    card = page.split('data-branch="feature/login"')[1].split("</article>")[0]
    assert f'href="{SCAN}"' in card and "✗ security/scan" in card
    assert 'href="https://ci.example.com/b/1"' in card and "✓ ci/build" in card
    assert "security/scan on the branch head: failure — 2 high findings" in card
    staging = page.split('data-branch="staging"')[1]
    assert "… ci/e2e" in staging.split("Waiting for release")[0]


def test_promote_to_master_shows_the_red_staging_context_and_refuses(
    client: Client, shop: Repository, release_manager: Any
) -> None:
    _require(shop, "ci/e2e", GateTarget.STAGING_HEAD)
    _status(shop, STAGING, "ci/e2e", "failure", "https://ci.example.com/e2e/3", "checkout flow broke")
    page = _page(client, release_manager, reverse("web:release_new", args=["shop"]))
    assert "Promote to master is refused until staging's required statuses are green." in page
    assert f"Required statuses on the staging head {STAGING[:10]}: ci/e2e is failure: checkout flow broke" in page
    assert (
        '<a href="https://ci.example.com/e2e/3" rel="noopener noreferrer" target="_blank">Open ci/e2e in CI</a>' in page
    )
    assert 'id="release-submit" class="primary" disabled' in page

    _status(shop, STAGING, "ci/e2e", "success", "https://ci.example.com/e2e/4")
    page = _page(client, release_manager, reverse("web:release_new", args=["shop"]))
    assert "refused until" not in page and "✓ success" in page


def test_a_target_url_that_is_not_http_is_never_a_link(
    client: Client, shop: Repository, promotion: Promotion, release_manager: Any
) -> None:
    _require(shop, "security/scan", GateTarget.BRANCH_HEAD)
    _require(shop, "ci/e2e", GateTarget.STAGING_HEAD)
    for sha, context in ((HEAD, "security/scan"), (MERGE, "ci/build"), (STAGING, "ci/e2e")):
        _status(shop, sha, context, "failure", "javascript:alert(1)", "x")
        _status(shop, sha, context + "-data", "error", "data:text/html,<script>alert(1)</script>")
    for url in (
        reverse("web:promotion_detail", args=["shop", promotion.pk]),
        reverse("web:board", args=["shop"]),
        reverse("web:release_new", args=["shop"]),
    ):
        client.force_login(release_manager)
        raw = client.get(url).content.decode().lower()
        assert "ci/e2e" in raw or "security/scan" in raw, url
        assert "javascript:" not in raw and "data:text" not in raw, url
        assert "<script>alert" not in raw, url


def test_for_page_reads_any_number_of_commits_in_two_queries(shop: Repository) -> None:
    _require(shop, "ci/build", GateTarget.MERGE_COMMIT)

    def count(n: int) -> int:
        pairs = []
        for i in range(n):
            sha = f"{i + 1:040x}"
            _status(shop, sha, "ci/build", "pending")
            _status(shop, sha, "ci/build", "success")
            pairs.append((GateTarget.MERGE_COMMIT.value, sha))
        with CaptureQueriesContext(connection) as captured:
            found = statuses.for_page(shop, pairs)
        assert all(found[pair].lines[0].state == "success" for pair in pairs)
        return len(captured.captured_queries)

    assert count(1) == count(20) == 2


def test_the_page_query_data_set_has_statuses_on_every_page_it_counts(client: Client, release_manager: Any) -> None:
    """tests/test_page_queries.py counts the board, promotion and release pages on this data."""
    from bench.dataset import grow, repository

    repo = repository("counted")
    grow(repo, release_manager)
    promotion = Promotion.objects.filter(repository=repo, state="open").order_by("id").first()
    assert promotion is not None
    board = _page(client, release_manager, reverse("web:board", args=[repo.name]))
    assert board.count("✓ ci/build") >= 2 and "✓ lint" in board
    detail = _page(client, release_manager, reverse("web:promotion_detail", args=[repo.name, promotion.pk]))
    assert "Open ci/build in CI" in detail and "Open lint in CI" in detail
    release = _page(client, release_manager, reverse("web:release_new", args=[repo.name]))
    assert 'data-target="staging_head"' in release and "Open ci/build in CI" in release


def test_a_reported_status_changes_the_board_for_its_poller(
    client: Client, shop: Repository, promotion: Promotion, developer: Any
) -> None:
    client.force_login(developer)
    url = reverse("web:board", args=["shop"])
    token = client.get(url).context["board_token"]
    statuses.report(shop, sha=HEAD, context="ci/build", state="failure", actor=developer)
    response = client.get(url, {"since": token}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "✗ ci/build" in response.content.decode()
