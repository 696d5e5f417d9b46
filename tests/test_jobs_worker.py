"""The release cycle through a real Celery worker process, real broker, real git."""

from __future__ import annotations

import pytest

from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases import services
from releaseboard.releases.models import Branch, BranchState, PromotionState, ReleaseState, TestRun
from tests.conftest import wait_for, wait_for_job
from tests.gitrepo import CALC

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _synced(repository, actor):
    job = wait_for_job(services.refresh(repository, actor=actor))
    assert job.state == JobState.SUCCEEDED, job.message
    # The first sync sees an untested staging head and queues its test.
    staging_test = Job.objects.filter(kind="test_staging").first()
    if staging_test:
        wait_for_job(staging_test)
    return job


def _branch_with_commit(repository, remote, developer, name, files):
    branch = services.request_branch(repository, actor=developer, kind="feature", name=name, purpose="work")
    job = wait_for_job(Job.objects.get(kind="create_branch", subject_id=branch.pk))
    assert job.state == JobState.SUCCEEDED, job.message
    remote.commit_on(branch.name, files, f"Work on {name}")
    return Branch.objects.get(pk=branch.pk)


def _tested_promotion(branch, developer):
    promotion = services.request_promotion(branch, actor=developer, title=f"Promote {branch.name}")
    job = wait_for_job(Job.objects.get(kind="test_promotion", subject_id=promotion.pk))
    promotion.refresh_from_db()
    return promotion, job


def test_requested_branch_is_created_on_the_remote_at_the_staging_head(celery_worker, repository, remote, developer):
    _synced(repository, developer)
    branch = services.request_branch(repository, actor=developer, kind="hotfix", name="rounding", purpose="fix")
    job = wait_for_job(Job.objects.get(kind="create_branch", subject_id=branch.pk))

    assert job.state == JobState.SUCCEEDED, job.message
    branch.refresh_from_db()
    assert branch.state == BranchState.ACTIVE
    assert remote.head("hotfix/rounding") == remote.head("staging") == branch.base_sha


def test_promotion_lands_the_tested_merge_commit_with_its_trailer(
    celery_worker, repository, remote, developer, release_manager
):
    _synced(repository, developer)
    branch = _branch_with_commit(repository, remote, developer, "search", {"search.py": "def find():\n    return 1\n"})
    promotion, test_job = _tested_promotion(branch, developer)
    assert test_job.state == JobState.SUCCEEDED, test_job.message
    staging_before = remote.head("staging")

    job = wait_for_job(services.promote(promotion, actor=release_manager))

    assert job.state == JobState.SUCCEEDED, job.message
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED
    assert remote.head("staging") == promotion.merge_sha
    assert f"Releaseboard-Promotion: {promotion.pk}" in remote.message("staging")
    # The exact commit that landed was tested, against its tree.
    run = TestRun.objects.get(commit_sha=promotion.merge_sha, result="passed")
    assert run.tree_sha == remote.tree("staging")
    assert remote.parents("staging") == [staging_before, remote.head(branch.name)]


def test_failing_tests_leave_staging_untouched(celery_worker, repository, remote, developer, release_manager):
    _synced(repository, developer)
    broken = CALC.replace("a + b", "a - b")
    branch = _branch_with_commit(repository, remote, developer, "broken", {"calc.py": broken})
    staging_before = remote.head("staging")

    promotion, test_job = _tested_promotion(branch, developer)

    assert test_job.state == JobState.FAILED
    assert test_job.reason == JobReason.TESTS_FAILED
    assert "FAIL" in "".join(test_job.log.values_list("text", flat=True))
    assert remote.head("staging") == staging_before
    with pytest.raises(services.Refused):
        services.promote(promotion, actor=release_manager)
    assert remote.head("staging") == staging_before


def test_release_moves_master_to_the_tested_staging_commit_and_tags_it(
    celery_worker, repository, remote, developer, release_manager
):
    _synced(repository, developer)
    branch = _branch_with_commit(repository, remote, developer, "search", {"search.py": "X = 1\n"})
    promotion, _ = _tested_promotion(branch, developer)
    assert wait_for_job(services.promote(promotion, actor=release_manager)).state == JobState.SUCCEEDED
    repository.refresh_from_db()

    release = services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="- search")
    job = wait_for_job(Job.objects.get(kind="release", subject_id=release.pk))

    assert job.state == JobState.SUCCEEDED, job.message
    release.refresh_from_db()
    assert release.state == ReleaseState.RELEASED
    assert remote.head("master") == remote.head("staging") == release.sha
    assert remote.tag_target("v0.1.0") == release.sha
    assert "- search" in remote.tag_message("v0.1.0")
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.RELEASED and promotion.release_id == release.pk


def test_cancelling_a_running_test_kills_it_and_changes_nothing(
    celery_worker, repository, remote, developer, release_manager
):
    _synced(repository, developer)
    repository.test_command = "python3 -c \"import time; print('started', flush=True); time.sleep(120)\""
    repository.save()
    branch = _branch_with_commit(repository, remote, developer, "slow", {"slow.py": "X = 2\n"})
    promotion = services.request_promotion(branch, actor=developer, title="Slow")
    job = Job.objects.get(kind="test_promotion", subject_id=promotion.pk)
    wait_for(lambda: "started" in "".join(job.log.values_list("text", flat=True)), what="the test to start")

    services.cancel_job(job, actor=release_manager)
    job = wait_for_job(job, timeout=30)

    assert job.state == JobState.CANCELLED
    assert not TestRun.objects.filter(promotion=promotion, result="passed").exists()
