"""The conflict radar against the benchmark generator's repository, whose manifest says
which pairs of branches conflict (computed line by line, independently of git)."""

from __future__ import annotations

import re
import shutil
import threading
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import resolve, reverse

from bench import gen_repo
from releaseboard import vcs
from releaseboard.jobs.models import Job, JobLogLine, JobState
from releaseboard.radar import selectors as radar
from releaseboard.radar.compute import SCRATCH_ENV, PendingRefresh, pairs_of, refresh_radar, start_refresh, wanted_heads
from releaseboard.radar.models import PairMerge
from releaseboard.releases import services
from releaseboard.releases.models import Branch, Promotion, Repository
from releaseboard.releases.runners import mirror_for
from tests.conftest import run_jobs
from tests.gitrepo import TEST_COMMAND, Remote, git


@pytest.fixture(scope="module")
def generated_once(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The generator's small repository (50 branches) and its manifest, built once per module."""
    out = tmp_path_factory.mktemp("generated")
    manifest = gen_repo.generate(out, files=100, commits=200)
    return {"remote": out / "remote.git", "manifest": manifest, "names": [b["name"] for b in manifest["branches"]]}


@pytest.fixture
def generated(tmp_path: Path, generated_once: dict[str, Any]) -> dict[str, Any]:
    """A copy of it for one test: some tests move branches on the remote."""
    remote = tmp_path / "remote.git"
    shutil.copytree(generated_once["remote"], remote, symlinks=True)
    return {**generated_once, "remote": remote}


@pytest.fixture
def synced(
    transactional_db: None, settings: Any, tmp_path: Path, generated: dict[str, Any], release_manager: User
) -> Repository:
    # Committed data (transactional_db): the job's heartbeat thread writes from its own
    # connection, which an open test transaction would block on SQLite.
    settings.WORK_DIR = tmp_path / "work"
    repository = Repository.objects.create(name="big", remote_url=str(generated["remote"]), test_command=TEST_COMMAND)
    sync(repository, release_manager)
    return repository


def sync(repository: Repository, actor: User) -> Job:
    job = services.refresh(repository, actor=actor)
    run_jobs(kind="sync")
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.message
    return job


def move_branch(remote: Path, name: str, message: str) -> tuple[str, str]:
    """Move a branch on the remote by one commit that changes no file: (old head, new head)."""
    old = git("-C", str(remote), "rev-parse", f"refs/heads/{name}")
    moved = git(
        "-C", str(remote), "-c", "user.name=Dev", "-c", "user.email=dev@example.com",
        "commit-tree", "-p", old, "-m", message, f"{old}^{{tree}}",
    )  # fmt: skip
    git("-C", str(remote), "update-ref", f"refs/heads/{name}", moved, old)
    return old, moved


def log_of(job: Job) -> str:
    return "".join(JobLogLine.objects.filter(job=job).order_by("seq").values_list("text", flat=True))


def conflicts_by_pair(repository: Repository) -> tuple[dict[frozenset[str], list[str]], dict[str, list[str]]]:
    """What the radar shows: {pair of branch names: conflicted files}, {branch: files vs staging}."""
    matrix = radar.matrix(repository)
    pairs, with_staging = {}, {}
    for row in matrix.rows:
        assert row.staging is not None
        assert row.staging.state != radar.PENDING
        if row.staging.state == radar.CONFLICT:
            with_staging[row.branch.name] = sorted({c["path"] for c in row.staging.conflicts})
        for cell in row.cells:
            assert cell.state != radar.PENDING
            if cell.state == radar.CONFLICT:
                pairs[frozenset((row.branch.name, cell.other.name))] = sorted({c["path"] for c in cell.conflicts})
    return pairs, with_staging


def test_radar_matches_the_generators_conflict_matrix_exactly(synced: Repository, generated: dict[str, Any]) -> None:
    manifest = generated["manifest"]
    expected_pairs = {
        frozenset(key.split(" ")): sorted(files) for key, files in manifest["expected_conflicting_pairs"].items()
    }
    pairs, with_staging = conflicts_by_pair(synced)
    matrix = radar.matrix(synced)
    assert [b.name for b in matrix.branches] == sorted(generated["names"])
    assert sum(len(row.cells) for row in matrix.rows) == len(list(combinations(generated["names"], 2)))
    assert pairs == expected_pairs
    assert with_staging == {name: sorted(files) for name, files in manifest["expected_conflicts_with_staging"].items()}
    assert matrix.conflicting_pairs == len(expected_pairs)
    assert matrix.pending_pairs == 0


def test_radar_names_the_kind_of_each_conflict(synced: Repository, generated: dict[str, Any]) -> None:
    names = generated["names"]
    branches = {b.name: b for b in Branch.objects.filter(repository=synced)}
    kinds = {"same-line": "content", "modify/delete": "modify/delete", "add/add": "add/add"}
    checked = 0
    for design, x, y, path in generated["manifest"]["design"]:
        if design not in kinds:
            continue
        cell = radar.pair(synced, branches[names[x]], branches[names[y]])
        assert cell.state == radar.CONFLICT
        assert {"path": path, "kind": kinds[design]} in cell.conflicts, (design, cell.conflicts)
        checked += 1
    assert checked >= 3


def test_radar_writes_no_objects_into_the_mirror(
    synced: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = mirror_for(synced)
    scratch = tmp_path / "scratch"
    monkeypatch.setenv(SCRATCH_ENV, str(scratch))

    def loose_objects() -> set[str]:
        return {str(p) for p in (mirror.path / "objects").rglob("*") if p.is_file()}

    before = loose_objects()
    PairMerge.objects.filter(repository=synced).delete()
    done = refresh_radar(synced, mirror)
    assert done.computed == done.pairs == 50 * 49 // 2 + 50
    assert loose_objects() == before
    # The scratch object directory, where merge-tree wrote the merged trees, is gone too.
    assert list(scratch.iterdir()) == []


def test_only_the_pairs_of_a_moved_branch_are_merged_again(
    synced: Repository, generated: dict[str, Any], release_manager: User
) -> None:
    remote, name = generated["remote"], generated["names"][5]
    kept = {(m.low_sha, m.high_sha): m.pk for m in PairMerge.objects.filter(repository=synced)}
    _, moved = move_branch(remote, name, "Another commit")

    job = sync(synced, release_manager)

    # 49 other branches and staging: exactly the pairs with the moved head.
    assert "conflict radar: 1275 pairs, 50 merged now, 1225 from the cache" in log_of(job)
    now = {(m.low_sha, m.high_sha): m.pk for m in PairMerge.objects.filter(repository=synced)}
    assert len(now) == 1275
    assert sum(1 for key in now if key in kept and now[key] == kept[key]) == 1225
    assert all(moved in key for key in now.keys() - kept.keys())
    pairs, _ = conflicts_by_pair(synced)
    expected = {frozenset(key.split(" ")) for key in generated["manifest"]["expected_conflicting_pairs"]}
    assert set(pairs) == expected  # the new commit changes no file


def test_a_refresh_with_the_same_heads_reads_no_pairs_and_runs_no_git(
    synced: Repository, generated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = mirror_for(synced)
    merged: list[int] = []
    real_merge_pairs = vcs.merge_pairs

    def counting(mirror: vcs.Mirror, pairs: list[tuple[str, str]], **kwargs: Any) -> Any:
        merged.append(len(pairs))
        return real_merge_pairs(mirror, pairs, **kwargs)

    monkeypatch.setattr(vcs, "merge_pairs", counting)
    with CaptureQueriesContext(connection) as queries:
        done = refresh_radar(synced, mirror)
    assert (done.pairs, done.computed, done.cached) == (1275, 0, 1275)
    assert merged == []
    # Only a COUNT of the pairs: no pair row read (1,275 here, some 5,000 at 100 open branches).
    pair_reads = [q["sql"] for q in queries.captured_queries if "radar_pairmerge" in q["sql"]]
    assert len(pair_reads) == 1 and "COUNT(" in pair_reads[0], pair_reads

    # Pairs removed behind its back: the same heads, but fewer pairs than they make.
    gone = PairMerge.objects.filter(repository=synced).order_by("pk")[:7].values_list("pk", flat=True)
    PairMerge.objects.filter(pk__in=list(gone)).delete()
    done = refresh_radar(synced, mirror)
    assert (done.computed, merged) == (7, [7])
    assert PairMerge.objects.filter(repository=synced).count() == 1275


def test_a_refresh_after_a_head_moved_reads_only_the_pairs_with_the_old_and_the_new_head(
    synced: Repository, generated: dict[str, Any]
) -> None:
    remote, name = generated["remote"], generated["names"][5]
    old, moved = move_branch(remote, name, "Moved")
    mirror = mirror_for(synced)
    mirror.fetch()
    Branch.objects.filter(repository=synced, name=name).update(head_sha=moved)

    pending = start_refresh(synced, mirror)
    # Read: the old head's 50 pairs (49 other branches and staging), not all 1,275.
    assert isinstance(pending, PendingRefresh)
    assert len(pending.known) == 50 and all(old in key for key in pending.known)
    assert len(pending.missing) == 50 and all(moved in key for key in pending.missing)
    done = pending.finish()
    assert (done.pairs, done.computed, done.cached) == (1275, 50, 1225)
    stored = set(PairMerge.objects.filter(repository=synced).values_list("low_sha", "high_sha"))
    assert stored == pairs_of(wanted_heads(synced))  # the old head's pairs gone, the new one's there

    # Pairs removed behind its back since: fewer than the covered heads make, so every
    # pair is read again and the missing ones merged, whatever head they have.
    gone = list(PairMerge.objects.filter(repository=synced).exclude(low_sha=moved).exclude(high_sha=moved)[:3])
    PairMerge.objects.filter(pk__in=[p.pk for p in gone]).delete()
    Branch.objects.filter(repository=synced, name=name).update(head_sha=old)
    pending = start_refresh(synced, mirror)
    assert isinstance(pending, PendingRefresh)
    assert len(pending.known) == 1272
    done = pending.finish()
    assert (done.pairs, done.computed) == (1275, 53)
    stored = set(PairMerge.objects.filter(repository=synced).values_list("low_sha", "high_sha"))
    assert stored == pairs_of(wanted_heads(synced))


def test_the_radar_merges_on_a_thread_of_its_own_while_the_job_computes_branch_facts(
    synced: Repository, generated: dict[str, Any], release_manager: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from releaseboard.vcs import radar as vcs_radar

    threads: list[str] = []
    real_run_git = vcs_radar.run_git

    def spying(args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_run_git(args, **kwargs)

    monkeypatch.setattr(vcs_radar, "run_git", spying)
    remote, name = generated["remote"], generated["names"][7]
    move_branch(remote, name, "More")

    job = sync(synced, release_manager)

    assert threads == ["radar-merges"]  # the job's own thread went on to the branch facts
    text = log_of(job)
    assert "conflict radar: 1275 pairs, 50 merged now, 1225 from the cache" in text
    assert text.index("branches: ") < text.index("conflict radar: ")  # said once the merges are stored
    assert PairMerge.objects.filter(repository=synced).count() == 1275


def test_a_radar_failure_is_logged_and_the_sync_still_succeeds(
    synced: Repository, generated: dict[str, Any], release_manager: User
) -> None:
    # A branch with unrelated history: merge-tree refuses to merge it, and the batch fails.
    remote = generated["remote"]
    tree = git("-C", str(remote), "mktree", "--missing")  # no input: the empty tree
    orphan = git(
        "-C",
        str(remote),
        "-c",
        "user.name=Dev",
        "-c",
        "user.email=dev@example.com",
        "commit-tree",
        "-m",
        "Unrelated",
        tree,
    )
    git("-C", str(remote), "update-ref", "refs/heads/feature/unrelated", orphan)
    before = PairMerge.objects.filter(repository=synced).count()

    job = sync(synced, release_manager)

    assert "conflict radar: not refreshed" in log_of(job)
    assert Branch.objects.filter(repository=synced, name="feature/unrelated", head_sha=orphan).exists()
    assert PairMerge.objects.filter(repository=synced).count() == before  # the previous results stay
    assert radar.matrix(synced).pending_pairs == 51  # the new branch's pairs are not merged yet


# -- pages --------------------------------------------------------------------------------


CELL = re.compile(r'<td><a href="([^"]+)" class="(bad|good|busy)">([^<]+)</a></td>')


def test_board_shows_the_matrix_with_conflicting_cells(
    client: Client, developer: User, synced: Repository, generated: dict[str, Any]
) -> None:
    manifest = generated["manifest"]
    red = len(manifest["expected_conflicting_pairs"]) + len(manifest["expected_conflicts_with_staging"])
    client.force_login(developer)
    page = client.get(reverse("web:board", args=[synced.name])).content.decode()
    assert "Conflict radar" in page
    cells = CELL.findall(page)
    assert len(cells) == 50 * 49 // 2 + 50
    assert sum(tone == "bad" for _, tone, _ in cells) == red
    assert [shown for _, tone, shown in cells if tone == "good"] == ["✓"] * (len(cells) - red)
    # Each cell is a link to its detail; htmx loads it below the matrix (boosted links).
    table = page.split('<table class="table radar-matrix"')[1].split(">")[0]
    assert 'hx-boost="true"' in table and 'hx-target="#radar-detail"' in table
    branches = {b.pk: b for b in Branch.objects.filter(repository=synced)}
    for href, tone, shown in cells:
        match = resolve(href)
        assert match.view_name == "web:radar_cell" and match.kwargs["repo"] == synced.name
        if tone == "bad":  # the number of conflicted files, as the cell's page lists them
            cell = radar.pair(synced, branches[match.kwargs["branch_id"]], branches[match.kwargs["other_id"]])
            assert cell.state == radar.CONFLICT and int(shown) == len(cell.conflicts)
    href = next(href for href, tone, _ in cells if tone == "bad")
    assert client.get(href).status_code == 200
    detail = client.get(href, headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" not in detail.content.decode() and detail["HX-Push-Url"] == "false"
    # The board's poll (htmx) carries the matrix too, so it follows each sync.
    fragment = client.get(reverse("web:board", args=[synced.name]), headers={"HX-Request": "true"}).content.decode()
    assert CELL.findall(fragment) == cells


def test_a_cell_shows_the_conflicted_files_as_a_fragment_or_a_page(
    client: Client, developer: User, synced: Repository, generated: dict[str, Any]
) -> None:
    names = generated["names"]
    design = {d[0]: d for d in generated["manifest"]["design"]}
    _kind, x, y, path = design["modify/delete"]
    a = Branch.objects.get(repository=synced, name=names[x])
    b = Branch.objects.get(repository=synced, name=names[y])
    url = reverse("web:radar_cell", args=[synced.name, a.pk, b.pk])
    client.force_login(developer)

    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert path in fragment and "modify/delete" in fragment
    assert "<html" not in fragment

    page = client.get(url).content.decode()
    assert "<html" in page and path in page and "modify/delete" in page

    staging = Branch.objects.get(repository=synced, name="staging")
    clean = client.get(reverse("web:radar_cell", args=[synced.name, a.pk, staging.pk])).content.decode()
    assert "merge without conflicts" in clean


def test_a_cell_of_another_repositorys_branch_is_not_found(client: Client, developer: User, synced: Repository) -> None:
    other = Repository.objects.create(name="other", remote_url="/srv/git/other.git", test_command="true")
    stranger = Branch.objects.create(repository=other, name="feature/x", kind="feature", head_sha="c" * 40)
    mine = Branch.objects.filter(repository=synced, kind="feature").first()
    assert mine is not None
    client.force_login(developer)
    assert client.get(reverse("web:radar_cell", args=[synced.name, mine.pk, stranger.pk])).status_code == 404


def test_promotion_page_warns_which_branches_will_conflict_once_it_lands(
    client: Client, developer: User, synced: Repository, generated: dict[str, Any]
) -> None:
    names = generated["names"]
    conflicting = sorted(
        (set(key.split(" ")) - {names[0]}).pop()
        for key in generated["manifest"]["expected_conflicting_pairs"]
        if names[0] in key.split(" ")
    )
    assert conflicting
    branch = Branch.objects.get(repository=synced, name=names[0])
    promotion = Promotion.objects.create(repository=synced, branch=branch, title="First")
    client.force_login(developer)
    page = client.get(reverse("web:promotion_detail", args=[synced.name, promotion.pk])).content.decode()
    assert f"{len(conflicting)} other open branch" in page and "will conflict" in page
    assert [name for name in names if f">{name}</a>:" in page] == sorted(conflicting, key=names.index)
    assert page.index("will conflict") < page.index("Run tests again")


def test_promotion_page_has_no_warning_for_a_branch_without_conflicts(
    client: Client, developer: User, synced: Repository, generated: dict[str, Any]
) -> None:
    involved = {n for key in generated["manifest"]["expected_conflicting_pairs"] for n in key.split(" ")}
    quiet = next(n for n in generated["names"] if n not in involved)
    branch = Branch.objects.get(repository=synced, name=quiet)
    promotion = Promotion.objects.create(repository=synced, branch=branch, title="Quiet")
    client.force_login(developer)
    page = client.get(reverse("web:promotion_detail", args=[synced.name, promotion.pk])).content.decode()
    assert "will conflict" not in page


def test_merge_pairs_takes_only_full_shas(tmp_path: Path) -> None:
    """Each pair becomes a line on merge-tree's stdin: a name with a space would split it."""
    remote = Remote(tmp_path / "git")
    mirror = vcs.Mirror(tmp_path / "mirror.git", remote.url, allow_local=True)
    mirror.fetch()
    master = mirror.branch_head("master")
    assert master is not None
    assert vcs.merge_pairs(mirror, []) == []
    assert vcs.merge_pairs(mirror, [(master, master)])[0].clean
    for bad in ("master", "--help", f"{master} {master}", master[:12]):
        with pytest.raises(ValueError):
            vcs.merge_pairs(mirror, [(master, bad)])
