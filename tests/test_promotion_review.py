"""The promotion page as a merge request: the test job records the commits, files and
diff (or the conflicting hunks) with real git; the page renders them without git."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client
from django.urls import reverse

from releaseboard.releases import services
from releaseboard.releases.models import Branch, Promotion
from releaseboard.review.compute import LARGE_FILE_LINES
from releaseboard.review.models import PromotionReview
from releaseboard.web.diffview import render_conflict, render_patch
from tests.conftest import run_jobs
from tests.flows import sync
from tests.gitrepo import CALC

BIG = "".join(f"LINE_{i} = {i}\n" for i in range(LARGE_FILE_LINES + 50))


def promotion_of(repository: Any, remote: Any, developer: Any, name: str, files: dict[str, str]) -> Promotion:
    branch = services.request_branch(repository, actor=developer, kind="feature", name=name, purpose="work")
    run_jobs()
    remote.commit_on(branch.name, files, f"Add {name} to the shop")
    sync(repository, developer)
    promotion = services.request_promotion(Branch.objects.get(pk=branch.pk), actor=developer, title=name)
    run_jobs()
    promotion.refresh_from_db()
    return promotion


def test_test_job_records_commits_files_and_diff(repository: Any, remote: Any, developer: Any) -> None:
    sync(repository, developer)
    promotion = promotion_of(
        repository, remote, developer, "discounts", {"calc.py": CALC.replace("a + b", "(a + b) * 0.9"), "big.py": BIG}
    )
    review = PromotionReview.objects.get(promotion=promotion)
    assert review.merge_sha == promotion.merge_sha and review.branch_sha == promotion.branch_sha
    assert [c["subject"] for c in review.data["commits"]] == ["Add discounts to the shop"]
    files = {f["path"]: f for f in review.data["files"]}
    assert (files["calc.py"]["added"], files["calc.py"]["deleted"]) == (1, 1)
    assert "+    return (a + b) * 0.9" in files["calc.py"]["patch"]
    assert files["big.py"]["added"] == LARGE_FILE_LINES + 50


def test_promotion_page_shows_the_changes_highlighted_and_large_files_on_demand(
    client: Client, repository: Any, remote: Any, developer: Any
) -> None:
    sync(repository, developer)
    promotion = promotion_of(
        repository, remote, developer, "discounts", {"calc.py": CALC.replace("a + b", "(a + b) * 0.9"), "big.py": BIG}
    )
    client.force_login(developer)
    page = client.get(reverse("web:promotion_detail", args=["shop", promotion.pk])).content.decode()
    assert "Add discounts to the shop" in page
    assert "calc.py" in page and "+1</span>" in page
    assert '<tr class="diff-add">' in page and '<span class="k">return</span>' in page  # Pygments classes
    assert "style=" not in page  # colours by class only, under the CSP
    # The large file is collapsed and loaded with htmx from what the job stored.
    index = [f["path"] for f in PromotionReview.objects.get(promotion=promotion).data["files"]].index("big.py")
    url = reverse("web:promotion_file", args=["shop", promotion.pk, index])
    assert f'hx-get="{url}"' in page and "LINE_5 = 5" not in page
    fragment = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "LINE_5" in fragment and "<html" not in fragment


def test_a_conflict_records_the_conflicting_hunks_and_what_landed(
    client: Client, repository: Any, remote: Any, developer: Any, release_manager: Any
) -> None:
    sync(repository, developer)
    coupons = services.request_branch(repository, actor=developer, kind="feature", name="coupons", purpose="work")
    run_jobs()
    remote.commit_on(coupons.name, {"calc.py": CALC.replace("a + b", "(a + b)")}, "Coupons")
    first = promotion_of(repository, remote, developer, "discounts", {"calc.py": CALC.replace("a + b", "b + a")})
    services.promote(first, actor=release_manager)
    run_jobs()
    sync(repository, developer)
    second = services.request_promotion(Branch.objects.get(pk=coupons.pk), actor=developer, title="Coupons")
    run_jobs()
    second.refresh_from_db()
    assert second.merge_check == "conflict"
    review = PromotionReview.objects.get(promotion=second)
    (conflict,) = review.data["conflicts"]
    assert conflict["path"] == "calc.py"
    assert "<<<<<<<" in conflict["hunks"][0]["text"] and "(a + b)" in conflict["hunks"][0]["text"]
    assert conflict["landed"][0]["promotion"] == str(first.pk)
    client.force_login(developer)
    page = client.get(reverse("web:promotion_detail", args=["shop", second.pk])).content.decode()
    assert "Conflicting hunks" in page
    assert reverse("web:promotion_detail", args=["shop", first.pk]) in page


def test_diff_text_and_conflict_hunks_are_escaped() -> None:
    patch = '@@ -1 +1 @@\n-x = "<b>"\n+x = "<script>alert(1)</script>"\n'
    html = render_patch("app.py", patch) + render_conflict(
        "app.html", "<<<<<<< a\n<img src=x onerror=alert(1)>\n=======\n>>>>>>> b"
    )
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    text = re.sub(r"<[^>]+>", "", html)  # the text between the highlighting spans
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x" in text
