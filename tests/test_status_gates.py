"""Required CI statuses gate the flow, on real remotes and through a real worker: a
promote job waits for the merge commit's status without holding a worker and lands that
same commit when it is green; a status from the wrong reporter is refused; a status that
never comes fails the promotion after its timeout; a red staging-head status blocks a
release until it is green."""

from __future__ import annotations

from typing import Any

import pytest

from releaseboard.integrations import statuses
from releaseboard.integrations.models import GateTarget, RequiredContext
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases import selectors, services
from releaseboard.releases.models import PromotionState
from tests.conftest import WorkerProcess, run_jobs, wait_for, wait_for_job
from tests.flows import passed_promotion, sync

pytestmark = pytest.mark.django_db(transaction=True)


class _Token:
    def __init__(self, name: str) -> None:
        self.name = name


@pytest.fixture
def ci_bot(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("ci-bot")


def _require(repository: Any, context: str, target: str, timeout_minutes: int = 60) -> RequiredContext:
    return RequiredContext.objects.create(
        repository=repository,
        context=context,
        applies_to=target,
        reporter_tokens=["ci-bot/ci"],
        timeout_minutes=timeout_minutes,
    )


@pytest.mark.worker
def test_a_promotion_waits_for_its_merge_commit_status_without_holding_a_worker(
    tmp_path: Any, repository: Any, remote: Any, developer: Any, release_manager: Any, ci_bot: Any
) -> None:
    sync(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "gated")
    assert promotion.merge_sha
    _require(repository, "ci/build", GateTarget.MERGE_COMMIT)
    staging_before = remote.head("staging")
    worker = WorkerProcess(tmp_path / "worker.log", concurrency=1)
    try:
        job = services.promote(promotion, actor=release_manager)
        wait_for(lambda: Job.objects.get(pk=job.pk).waits >= 1, timeout=60, what="the promote job to wait")
        job.refresh_from_db()
        assert job.state == JobState.QUEUED and "ci/build has not reported yet" in job.message
        assert remote.head("staging") == staging_before
        # The only worker slot is free meanwhile: another job runs.
        other = services.refresh(repository, actor=developer)
        assert wait_for_job(other, timeout=60).state == JobState.SUCCEEDED

        with pytest.raises(statuses.Refused):
            statuses.report(repository, sha=promotion.merge_sha, context="ci/build", state="success", actor=developer)
        statuses.report(
            repository, sha=promotion.merge_sha, context="ci/build", state="success", actor=ci_bot, token=_Token("ci")
        )
        job = wait_for_job(job, timeout=90)
        assert job.state == JobState.SUCCEEDED, job.message
        assert remote.head("staging") == promotion.merge_sha
        assert Job.objects.get(pk=job.pk).attempt == 1, "waiting did not count as attempts"
    finally:
        worker.stop()


def test_a_status_that_never_comes_fails_the_promotion_after_its_timeout(
    repository: Any, remote: Any, developer: Any, release_manager: Any
) -> None:
    sync(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "never")
    _require(repository, "ci/build", GateTarget.MERGE_COMMIT, timeout_minutes=0)
    staging_before = remote.head("staging")
    job = services.promote(promotion, actor=release_manager)
    run_jobs()
    job.refresh_from_db()
    promotion.refresh_from_db()
    assert job.state == JobState.FAILED and job.reason == JobReason.REFUSED
    assert "ci/build did not report success in time" in job.message
    assert promotion.state == PromotionState.FAILED
    assert remote.head("staging") == staging_before


def test_a_red_branch_status_refuses_the_promote_click_with_where_to_look(
    repository: Any, remote: Any, developer: Any, release_manager: Any, ci_bot: Any
) -> None:
    sync(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "red")
    _require(repository, "security/scan", GateTarget.BRANCH_HEAD)
    statuses.report(
        repository,
        sha=promotion.branch_sha,
        context="security/scan",
        state="failure",
        actor=ci_bot,
        token=_Token("ci"),
        target_url="https://scanner.example.com/7",
    )
    with pytest.raises(services.Refused, match="security/scan is failure — open https://scanner.example.com/7"):
        services.promote(promotion, actor=release_manager)


def test_a_required_staging_status_blocks_a_release_until_it_is_green(
    repository: Any, remote: Any, developer: Any, release_manager: Any, ci_bot: Any
) -> None:
    sync(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "ready")
    services.promote(promotion, actor=release_manager)
    run_jobs()
    repository.refresh_from_db()
    staging = remote.head("staging")
    services.test_staging(repository, actor=release_manager)
    run_jobs()
    _require(repository, "ci/e2e", GateTarget.STAGING_HEAD)
    with pytest.raises(services.Refused, match="ci/e2e has not reported yet"):
        services.promote_to_master(repository, actor=release_manager, version="1.0.0", notes="")
    statuses.report(repository, sha=staging, context="ci/e2e", state="success", actor=ci_bot, token=_Token("ci"))
    assert selectors.release_preview(repository).staging_sha == staging
    release = services.promote_to_master(repository, actor=release_manager, version="1.0.0", notes="")
    run_jobs()
    release.refresh_from_db()
    assert release.state == "released" and remote.head("master") == staging
