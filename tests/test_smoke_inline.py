from __future__ import annotations

from releaseboard.jobs.models import JobState
from releaseboard.releases import services
from releaseboard.releases.models import BranchState, PromotionState, ReleaseState
from tests.conftest import run_jobs


def test_whole_cycle_runs_inline(transactional_db, repository, remote, developer, release_manager):
    admin = release_manager
    services.refresh(repository, actor=developer)
    jobs = run_jobs()
    assert [j.state for j in jobs] == [JobState.SUCCEEDED, JobState.SUCCEEDED], [(j.kind, j.message) for j in jobs]
    branch = services.request_branch(repository, actor=developer, kind="feature", name="login", purpose="p")
    jobs = run_jobs()
    assert jobs[0].state == JobState.SUCCEEDED, jobs[0].message
    branch.refresh_from_db()
    assert branch.state == BranchState.ACTIVE and remote.head("feature/login") == remote.head("staging")
    remote.commit_on("feature/login", {"login.py": "x = 1\n"}, "Add login")
    promotion = services.request_promotion(branch, actor=developer, title="Login form")
    jobs = run_jobs()
    assert jobs[-1].state == JobState.SUCCEEDED, [(j.kind, j.message) for j in jobs]
    promotion.refresh_from_db()
    services.promote(promotion, actor=admin)
    jobs = run_jobs()
    assert jobs[-1].state == JobState.SUCCEEDED, [(j.kind, j.message) for j in jobs]
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED
    assert remote.head("staging") == promotion.merge_sha
    assert f"Releaseboard-Promotion: {promotion.pk}" in remote.message("staging")
    repository.refresh_from_db()
    release = services.promote_to_master(repository, actor=admin, version="0.1.0", notes="First")
    jobs = run_jobs()
    assert jobs[-1].state == JobState.SUCCEEDED, [(j.kind, j.message) for j in jobs]
    release.refresh_from_db()
    assert release.state == ReleaseState.RELEASED
    assert remote.head("master") == promotion.merge_sha
    assert remote.exists("refs/tags/v0.1.0")
