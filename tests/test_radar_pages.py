"""What the board's radar matrix and a promotion's page show of the radar's cache, with the
cache filled by hand (the merges themselves are tested against git in test_radar.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import resolve, reverse

from releaseboard.radar.models import PairMerge, pair_key
from releaseboard.releases.models import Branch, Promotion, Repository

CELL = re.compile(r'<td><a href="([^"]+)" class="(bad|good|busy)">([^<]+)</a></td>')
STAGING, LOGIN, CART, SEARCH, ZETA = "b" * 40, "c" * 40, "d" * 40, "e" * 40, "9" * 40


@pytest.fixture
def shop(db: None) -> Repository:
    repository = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha=STAGING)
    for name, sha in (("feature/login", LOGIN), ("feature/cart", CART), ("hotfix/search", SEARCH)):
        Branch.objects.create(repository=repository, name=name, kind=name.split("/")[0], head_sha=sha)
    merges = {
        (LOGIN, STAGING): [{"path": "app.py", "kind": "content"}],
        (CART, STAGING): [],
        (SEARCH, STAGING): [],
        (LOGIN, CART): [{"path": "cart.py", "kind": "content"}, {"path": "api.py", "kind": "modify/delete"}],
        (LOGIN, SEARCH): [],
        (CART, SEARCH): [{"path": "search.py", "kind": "add/add"}],
    }
    for (a, b), conflicts in merges.items():
        low, high = pair_key(a, b)
        PairMerge.objects.create(repository=repository, low_sha=low, high_sha=high, conflicts=conflicts)
    return repository


def cells_of(page: str) -> dict[tuple[str, str], tuple[str, str]]:
    """{(branch, other): (tone, shown)} of the board's matrix, read from the cells' links."""
    names = dict(Branch.objects.values_list("pk", "name"))
    cells = {}
    for href, tone, shown in CELL.findall(page):
        match = resolve(href)
        assert match.view_name == "web:radar_cell" and match.kwargs["repo"] == "shop"
        cells[names[match.kwargs["branch_id"]], names[match.kwargs["other_id"]]] = (tone, shown)
    return cells


def test_each_cell_shows_its_conflicts_a_clean_merge_or_not_merged_yet(
    client: Client, shop: Repository, developer: Any
) -> None:
    # A new branch: none of its merges are in the cache until the next sync.
    Branch.objects.create(repository=shop, name="feature/zeta", kind="feature", head_sha=ZETA)
    client.force_login(developer)
    page = client.get(reverse("web:board", args=["shop"])).content.decode()
    # Rows by name, each against staging and then every branch listed before it.
    assert cells_of(page) == {
        ("feature/cart", "staging"): ("good", "✓"),
        ("feature/login", "staging"): ("bad", "1"),
        ("feature/login", "feature/cart"): ("bad", "2"),
        ("feature/zeta", "staging"): ("busy", "?"),
        ("feature/zeta", "feature/cart"): ("busy", "?"),
        ("feature/zeta", "feature/login"): ("busy", "?"),
        ("hotfix/search", "staging"): ("good", "✓"),
        ("hotfix/search", "feature/cart"): ("bad", "1"),
        ("hotfix/search", "feature/login"): ("good", "✓"),
        ("hotfix/search", "feature/zeta"): ("busy", "?"),
    }
    # Each row names its branch and how many open branches it conflicts with.
    rows = dict(re.findall(r'<tr data-branch="([^"]+)"><th scope="row">(.*?)</th>', page))
    assert rows["feature/cart"] == (
        '<span class="mono">feature/cart</span> <span class="badge bad" title="conflicts with 2 open branches">2</span>'
    )
    assert rows["feature/login"].endswith('title="conflicts with 1 open branch">1</span>')
    assert rows["feature/zeta"] == '<span class="mono">feature/zeta</span>'
    # The columns name the branches the cells are merged with, staging first.
    head = page.split('<table class="table radar-matrix"')[1].split("</thead>")[0]
    assert re.findall(r"<span>([^<]+)</span>", head) == ["staging", "feature/cart", "feature/login", "feature/zeta"]
    assert "4 not merged yet" in page and "2 conflicting pairs of branches" in page


def test_a_fully_merged_map_reads_only_its_conflicting_pairs(client: Client, shop: Repository, developer: Any) -> None:
    client.force_login(developer)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("web:board", args=["shop"])).content.decode()
    assert cells_of(page) == {
        ("feature/cart", "staging"): ("good", "✓"),
        ("feature/login", "staging"): ("bad", "1"),
        ("feature/login", "feature/cart"): ("bad", "2"),
        ("hotfix/search", "staging"): ("good", "✓"),
        ("hotfix/search", "feature/cart"): ("bad", "1"),
        ("hotfix/search", "feature/login"): ("good", "✓"),
    }
    assert "no conflicts" not in page and "not merged yet" not in page
    # All 6 pairs are cached: a count, then the 3 conflicting rows alone.
    reads = [q["sql"] for q in queries.captured_queries if "radar_pairmerge" in q["sql"]]
    assert len(reads) == 2 and "COUNT(" in reads[0]
    with connection.cursor() as cursor:
        cursor.execute(reads[1])
        assert len(cursor.fetchall()) == 3


def test_a_cells_link_gives_its_files(client: Client, shop: Repository, developer: Any) -> None:
    client.force_login(developer)
    page = client.get(reverse("web:board", args=["shop"])).content.decode()
    href = next(href for href, _, shown in CELL.findall(page) if shown == "2")
    detail = client.get(href, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in detail
    assert "feature/login" in detail and "feature/cart" in detail
    assert "cart.py" in detail and "api.py" in detail and "modify/delete" in detail


def test_promotion_page_names_only_the_branches_that_conflict_with_its_own(
    client: Client, shop: Repository, developer: Any
) -> None:
    search = Branch.objects.get(repository=shop, name="hotfix/search")
    promotion = Promotion.objects.create(repository=shop, branch=search, title="Search")
    client.force_login(developer)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("web:promotion_detail", args=["shop", promotion.pk])).content.decode()
    assert "1 other open branch will conflict" in page
    warning = page.split('class="alert warn radar-landing"')[1].split("</div>")[0]
    assert ">feature/cart</a>:" in warning and "search.py" in warning
    # Login merges cleanly with search; login and cart conflict, but not with search.
    assert "feature/login" not in warning and "cart.py" not in warning
    # The cache is read for this branch's head only, not for every pair of the repository.
    reads = [q["sql"] for q in queries.captured_queries if "radar_pairmerge" in q["sql"]]
    assert len(reads) == 1 and SEARCH in reads[0]
    with connection.cursor() as cursor:
        cursor.execute(reads[0])
        read = cursor.fetchall()
    assert PairMerge.objects.filter(repository=shop).count() == 6
    assert len(read) == 2  # search with login and with cart, the other open branches
