"""Required CI statuses gate the flow, on real remotes and through a real worker: a
promote job waits for the merge commit's status without holding a worker and lands that
same commit when it is green (also with the statuses posted through the API by CI's
token); a status from the wrong reporter is refused; a status that
never comes fails the promotion after its timeout; a red staging-head status blocks a
release until it is green."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.contrib.auth.models import Group

from releaseboard.integrations import statuses
from releaseboard.integrations.models import GateTarget, RequiredContext
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases import selectors, services
from releaseboard.releases.models import PromotionState
from releaseboard.roles import Role
from releaseboard.tokens import service as tokens
from tests.conftest import WorkerProcess, run_jobs, wait_for, wait_for_job
from tests.flows import passed_promotion, sync
from tests.gitrepo import git

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


def _post_status(url: str, raw_token: str, sha: str, body: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """What CI does: one HTTP POST with its token (curl in a pipeline)."""
    request = urllib.request.Request(
        f"{url}/api/v1/repos/shop/statuses/{sha}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {raw_token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.worker
def test_through_the_api_a_promotion_waits_refuses_the_wrong_token_and_lands_the_tested_merge_once_green(
    live_server: Any, tmp_path: Any, repository: Any, remote: Any, developer: Any, release_manager: Any, ci_bot: Any
) -> None:
    sync(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "api-gated")
    merge_sha = promotion.merge_sha
    _require(repository, "ci/build", GateTarget.MERGE_COMMIT)
    ci_bot.groups.add(Group.objects.get_or_create(name=Role.DEVELOPER.value)[0])
    right = tokens.create_token(ci_bot, name="ci", scopes=["statuses"], days=1).raw
    other_of_the_bot = tokens.create_token(ci_bot, name="laptop", scopes=["statuses"], days=1).raw
    developers = tokens.create_token(developer, name="ci", scopes=["statuses"], days=1).raw
    staging_before = remote.head("staging")
    worker = WorkerProcess(tmp_path / "worker.log", concurrency=1)
    try:
        job = services.promote(promotion, actor=release_manager)
        wait_for(lambda: Job.objects.get(pk=job.pk).waits >= 1, timeout=60, what="the promote job to wait")
        assert "ci/build has not reported yet" in Job.objects.get(pk=job.pk).message

        # A developer's token, and another token of the CI user, are refused: nothing is recorded.
        for raw in (developers, other_of_the_bot):
            status, problem = _post_status(live_server.url, raw, merge_sha, {"context": "ci/build", "state": "success"})
            assert status == 403 and problem["code"] == "status_reporter_refused", problem
            assert "ci-bot/ci" in problem["detail"]
        # Pending from the right token: the job keeps waiting, staging stays where it was.
        status, _ = _post_status(live_server.url, right, merge_sha, {"context": "ci/build", "state": "pending"})
        assert status == 201
        waits = Job.objects.get(pk=job.pk).waits
        wait_for(lambda: Job.objects.get(pk=job.pk).waits > waits, timeout=60, what="the job to look again")
        assert Job.objects.get(pk=job.pk).state == JobState.QUEUED
        assert remote.head("staging") == staging_before

        status, reported = _post_status(
            live_server.url,
            right,
            merge_sha,
            {"context": "ci/build", "state": "success", "target_url": "https://ci.example.com/runs/1"},
        )
        assert status == 201 and reported["reporter"] == "ci-bot/ci" and reported["counts"] is True
        job = wait_for_job(job, timeout=90)
        assert job.state == JobState.SUCCEEDED, job.message
        promotion.refresh_from_db()
        assert promotion.state == PromotionState.PROMOTED
        assert remote.head("staging") == merge_sha, "the tested merge commit itself landed"
    finally:
        worker.stop()


def test_the_tested_merge_commit_waits_for_ci_on_a_candidate_ref_that_goes_once_it_landed(
    repository: Any, remote: Any, developer: Any, release_manager: Any, ci_bot: Any
) -> None:
    sync(repository, developer)
    _require(repository, "ci/build", GateTarget.MERGE_COMMIT)
    promotion = passed_promotion(repository, remote, developer, "candidate")
    ref = f"refs/releaseboard/candidates/{promotion.pk}"
    assert git("--git-dir", str(remote.bare), "rev-parse", ref) == promotion.merge_sha, "CI builds what will land"
    statuses.report(
        repository, sha=promotion.merge_sha, context="ci/build", state="success", actor=ci_bot, token=_Token("ci")
    )
    services.promote(promotion, actor=release_manager)
    run_jobs()
    assert remote.head("staging") == promotion.merge_sha
    assert not remote.exists(ref)


def test_a_sync_deletes_the_candidate_refs_of_promotions_that_no_longer_wait(
    repository: Any, remote: Any, developer: Any
) -> None:
    sync(repository, developer)
    _require(repository, "ci/build", GateTarget.MERGE_COMMIT)
    promotion = passed_promotion(repository, remote, developer, "dropped")
    ref = f"refs/releaseboard/candidates/{promotion.pk}"
    assert remote.exists(ref)
    type(promotion).objects.filter(pk=promotion.pk).update(state=PromotionState.CLOSED)
    sync(repository, developer)
    assert not remote.exists(ref)
