"""The job that moves staging or master brings every fact derived from it up to date
before it ends: behind/ahead, missing hotfixes, dependencies, the radar against staging
and the release preview. Only that job runs here (run_jobs(kind=...)): no sync, no Refresh.
"""

from __future__ import annotations

import pytest

from releaseboard.radar import selectors as radar
from releaseboard.releases import selectors, services
from releaseboard.releases.models import Branch, PromotionState
from tests.conftest import run_jobs
from tests.flows import passed_promotion
from tests.flows import sync as sync_now

pytestmark = pytest.mark.django_db(transaction=True)


def _branch(repository, remote, developer, name, files):
    branch = services.request_branch(repository, actor=developer, kind="feature", name=name, purpose="work")
    run_jobs()
    remote.commit_on(branch.name, files, f"Work on {name}")
    return branch


def _staging_cell(repository, branch):
    row = next(r for r in radar.matrix(repository).rows if r.branch.pk == branch.pk)
    assert row.staging is not None, "the repository has a staging branch"
    return row.staging.state


def test_a_landed_hotfix_updates_the_other_branches_the_radar_and_the_preview_before_its_job_ends(
    repository, remote, developer, release_manager
):
    sync_now(repository, developer)
    other = _branch(repository, remote, developer, "other", {"other.py": "O = 1\n"})
    hotfix = passed_promotion(repository, remote, developer, "fix", kind="hotfix")
    sync_now(repository, developer)
    before = Branch.objects.get(pk=other.pk)
    assert (before.behind, before.missing_hotfixes) == (0, [])

    services.promote(hotfix, actor=release_manager)
    ran = run_jobs(kind="promote")

    assert [job.kind for job in ran] == ["promote"]
    hotfix.refresh_from_db()
    assert hotfix.state == PromotionState.PROMOTED
    after = Branch.objects.get(pk=other.pk)
    assert after.behind == 2  # the hotfix's commit and its merge commit
    assert [m["name"] for m in after.missing_hotfixes] == ["hotfix/fix"]
    assert _staging_cell(repository, other) == radar.CLEAN  # merged against the new staging, not "?"
    repository.refresh_from_db()
    preview = selectors.release_preview(repository)
    assert preview.staging_sha == hotfix.merge_sha
    assert hotfix.merge_sha in [c["sha"] for c in preview.commits] and preview.promotions == [hotfix]


def test_copy_master_to_staging_updates_the_facts_before_its_job_ends(repository, remote, developer, release_manager):
    sync_now(repository, developer)
    first = passed_promotion(repository, remote, developer, "first")
    services.promote(first, actor=release_manager)
    run_jobs()
    # Started from the staging that has feature/first: it carries first's commit.
    later = _branch(repository, remote, developer, "later", {"later.py": "L = 1\n"})
    sync_now(repository, developer)
    assert Branch.objects.get(pk=later.pk).ahead == 1

    services.copy_master_to_staging(repository, actor=release_manager)
    ran = run_jobs(kind="copy_master")

    assert [job.kind for job in ran] == ["copy_master"]
    later = Branch.objects.get(pk=later.pk)
    assert later.ahead == 3  # its own commit, first's commit and first's merge: none is on staging now
    assert later.depends_on == [{"name": "feature/first", "commits": 1, "branch": first.branch_id}]
    assert _staging_cell(repository, later) == radar.CLEAN
    repository.refresh_from_db()
    preview = selectors.release_preview(repository)
    assert preview.commits == [] and preview.promotions == []
    assert "has nothing that master does not have" in preview.refusal


def test_a_release_updates_the_preview_before_its_job_ends(repository, remote, developer, release_manager):
    sync_now(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "shipped")
    services.promote(promotion, actor=release_manager)
    run_jobs()
    repository.refresh_from_db()
    assert selectors.release_preview(repository).commits

    services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")
    ran = run_jobs(kind="release")

    assert [job.kind for job in ran] == ["release"]
    repository.refresh_from_db()
    preview = selectors.release_preview(repository)
    assert preview.commits == [] and repository.master_in_staging is True
    assert "has nothing that master does not have" in preview.refusal
