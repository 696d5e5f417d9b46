"""The promote job computes the branch facts and the radar against the staging head it is
about to push while the push runs (derived.move_ahead), and uses them once the move is
recorded only when they were computed from what the job then finds: real jobs, real git."""

from __future__ import annotations

from typing import Any

import pytest

from releaseboard.jobs import execution
from releaseboard.jobs.models import Job, JobState
from releaseboard.radar.compute import refresh_radar
from releaseboard.radar.models import PairMerge, RadarCoverage, pair_key
from releaseboard.releases import intelligence, services
from releaseboard.releases.models import Branch, BranchState, Promotion, PromotionState, Repository
from releaseboard.releases.runners.common import mirror_for
from tests.conftest import GitProcesses, run_jobs
from tests.flows import passed_promotion, sync

pytestmark = pytest.mark.django_db(transaction=True)

FACTS = ("behind", "ahead", "missing_hotfixes", "depends_on")


def _open_branch(repository: Repository, remote: Any, developer: Any, name: str, files: dict[str, str]) -> Branch:
    branch = services.request_branch(repository, actor=developer, kind="feature", name=name, purpose="work")
    run_jobs()
    remote.commit_on(branch.name, files, f"Work on {name}")
    return Branch.objects.get(pk=branch.pk)


def _promote_job(promotion: Promotion, release_manager: Any, git_processes: GitProcesses) -> list[tuple[str, str]]:
    """Run the promotion's promote job in this process; the git subcommands it started, in
    order, each with the thread that started it."""
    services.promote(promotion, actor=release_manager)
    job = Job.objects.get(kind="promote", state=JobState.QUEUED)
    git_processes.clear()
    execution.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.message
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED, promotion.state_message
    return list(git_processes.order)


def _stored_facts(repository: Repository) -> dict[str, tuple[Any, ...]]:
    rows = Branch.objects.filter(repository=repository, state=BranchState.ACTIVE, kind="feature")
    return {b.name: tuple(getattr(b, f) for f in FACTS) for b in rows}


def _fresh_facts(repository: Repository) -> dict[str, tuple[Any, ...]]:
    """What git says now, computed from scratch with the per-branch reference."""
    branches = list(Branch.objects.filter(repository=repository, kind__in=intelligence.WORK_KINDS))
    mirror = mirror_for(repository)
    mirror.fetch()  # the remote's heads: a push leaves the mirror's own staging where it was
    heads = mirror.heads()
    facts = intelligence.analyse_per_branch(mirror, repository, heads, branches)
    return {
        b.name: tuple(getattr(facts[b.pk], f) for f in FACTS)
        for b in branches
        if b.state == BranchState.ACTIVE and b.kind == "feature"
    }


def _radar_rows(repository: Repository) -> set[tuple[str, str, str]]:
    return {
        (p.low_sha, p.high_sha, repr(sorted((c["path"], c["kind"]) for c in p.conflicts)))
        for p in PairMerge.objects.filter(repository=repository)
    }


def test_a_promotions_facts_and_radar_are_computed_while_it_pushes_and_not_again(
    repository, remote, developer, release_manager, git_processes
):
    sync(repository, developer)
    clashing = _open_branch(repository, remote, developer, "clashing", {"moving.py": "X = 2\n"})
    _open_branch(repository, remote, developer, "apart", {"apart.py": "A = 1\n"})
    promotion = passed_promotion(repository, remote, developer, "moving")  # writes moving.py: X = 1
    run_jobs()

    order = _promote_job(promotion, release_manager, git_processes)

    # The facts' history walks and the radar's merges ran in the threads started before the
    # push, and nowhere else: not again once the move was recorded.
    assert [t for c, t in order if c == "rev-list"] == ["facts-ahead"] * 2, order
    assert [t for c, t in order if c == "merge-tree"] == ["radar-ahead"], order
    # What they stored is what git says now, computed from scratch.
    assert remote.head("staging") == promotion.merge_sha
    stored = _stored_facts(repository)
    assert stored == _fresh_facts(repository)
    assert stored["feature/clashing"][:2] == (2, 1)  # behind by the promoted commit and its merge
    kept = _radar_rows(repository)
    PairMerge.objects.filter(repository=repository).delete()
    RadarCoverage.objects.filter(repository=repository).delete()
    refresh_radar(repository, mirror_for(repository))
    assert kept == _radar_rows(repository)
    clashing.refresh_from_db()
    low, high = pair_key(clashing.head_sha, promotion.merge_sha)
    clash = PairMerge.objects.get(repository=repository, low_sha=low, high_sha=high)
    assert [c["path"] for c in clash.conflicts] == ["moving.py"], clash.conflicts


def test_facts_computed_ahead_from_other_inputs_are_not_used(
    repository, remote, developer, release_manager, git_processes
):
    """A hotfix that lands joins the hotfixes the facts read, which the job could not know
    before its push: the facts computed ahead have another key and are computed again."""
    sync(repository, developer)
    _open_branch(repository, remote, developer, "waiting", {"waiting.py": "W = 1\n"})
    hotfix = passed_promotion(repository, remote, developer, "urgent", kind="hotfix")
    run_jobs()

    order = _promote_job(hotfix, release_manager, git_processes)

    # Computed ahead, and again by the job's own thread (the two may overlap: the work ahead runs niced).
    assert sorted(t for c, t in order if c == "rev-list") == ["MainThread"] * 2 + ["facts-ahead"] * 2, order
    stored = _stored_facts(repository)
    assert stored == _fresh_facts(repository)
    assert stored["feature/waiting"][2] == [{"name": "hotfix/urgent", "promotion": hotfix.pk}]
