"""The drift check racing Releaseboard's own pushes, with a real Celery worker held at a
fault point (releaseboard.jobs.faults) while another job runs in this process: a sync
never mistakes Releaseboard's push for drift, nor a rewind for Releaseboard's push."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs import faults as fault_points
from releaseboard.jobs.models import JobState
from releaseboard.policy.models import DriftAlarm, DriftState
from releaseboard.releases import selectors, services
from releaseboard.releases.models import ExpectedMove, MoveState, PromotionState
from tests.conftest import WorkerProcess, run_jobs, wait_for, wait_for_job
from tests.flows import passed_promotion
from tests.flows import sync as sync_now
from tests.gitrepo import git

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


class HeldWorker:
    """One worker process (one job at a time) whose jobs stop at armed fault points."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.faults = folder / "faults"
        self.faults.mkdir(parents=True)
        self.proc: WorkerProcess | None = None

    def start(self) -> None:
        self.proc = WorkerProcess(
            self.folder / "worker.log", name="held", concurrency=1, extra_env={fault_points.ENV: str(self.faults)}
        )

    def hold(self, point: str) -> None:
        (self.faults / f"{point}.pause").write_text("")

    def release(self, point: str) -> None:
        (self.faults / f"{point}.pause").unlink(missing_ok=True)

    def wait_held(self, point: str, job_id: int) -> None:
        wait_for(lambda: (self.faults / f"{point}.{job_id}.reached").exists(), timeout=60, what=f"job at {point}")

    def stop(self) -> None:
        for path in self.faults.iterdir():
            path.unlink()
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture
def held(tmp_path: Path) -> Iterator[HeldWorker]:
    worker = HeldWorker(tmp_path / "held")
    yield worker
    worker.stop()


def test_a_sync_whose_fetch_predates_a_promotion_push_raises_no_alarm_and_keeps_the_new_head(
    held, repository, remote, developer, release_manager
):
    sync_now(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "raced")
    before = remote.head("staging")
    held.start()
    held.hold("after_fetch")
    sync_job = services.refresh(repository, actor=developer)
    held.wait_held("after_fetch", sync_job.pk)  # it has fetched the old staging

    services.promote(promotion, actor=release_manager)
    run_jobs(kind="promote")  # in this process: the worker's only slot is held
    assert remote.head("staging") == promotion.merge_sha != before
    held.release("after_fetch")
    sync_job = wait_for_job(sync_job)

    assert sync_job.state == JobState.SUCCEEDED, sync_job.message
    assert not DriftAlarm.objects.exists() and not AuditEvent.objects.filter(action="drift.detected").exists()
    assert selectors.head(repository, "staging") == promotion.merge_sha  # the old head was not written back
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED


def test_a_sync_between_a_promotion_push_and_its_record_raises_no_alarm(
    held, repository, remote, developer, release_manager
):
    sync_now(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "between")
    held.start()
    held.hold("after_push")
    job = services.promote(promotion, actor=release_manager)
    held.wait_held("after_push", job.pk)
    assert remote.head("staging") == promotion.merge_sha  # pushed; the job has recorded nothing yet

    services.refresh(repository, actor=developer)
    run_jobs(kind="sync")  # in this process: the worker's only slot is held
    held.release("after_push")
    job = wait_for_job(job)

    assert job.state == JobState.SUCCEEDED, job.message
    assert not DriftAlarm.objects.exists()
    move = ExpectedMove.objects.get(branch_name="staging")
    assert (move.from_sha, move.to_sha, move.state) == (promotion.staging_sha, promotion.merge_sha, MoveState.LANDED)


def test_a_rewind_while_the_promotion_is_being_recorded_is_still_caught(
    held, repository, remote, developer, release_manager
):
    sync_now(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "undone")
    before = remote.head("staging")
    held.start()
    held.hold("after_push")
    job = services.promote(promotion, actor=release_manager)
    held.wait_held("after_push", job.pk)
    git("fetch", "-q", "origin", cwd=remote.work)
    git("push", "-q", "-f", "origin", f"{before}:staging", cwd=remote.work)  # undone at once, by hand
    held.release("after_push")
    wait_for_job(job)

    sync_now(repository, developer)

    alarm = DriftAlarm.objects.get(branch_name="staging", state=DriftState.OPEN)
    assert (alarm.expected_sha, alarm.found_sha) == (promotion.merge_sha, before)
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.REMOVED


def test_a_copy_of_master_that_a_sync_sees_land_first_discards_the_promotions_once(
    held, repository, remote, developer, release_manager
):
    sync_now(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "copied-away")
    services.promote(promotion, actor=release_manager)
    run_jobs()
    held.start()
    held.hold("after_push")
    job = services.copy_master_to_staging(repository, actor=release_manager)
    held.wait_held("after_push", job.pk)
    assert remote.head("staging") == remote.head("master")  # pushed; the job has recorded nothing yet

    services.refresh(repository, actor=developer)
    run_jobs(kind="sync")  # in this process: the worker's only slot is held
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.DISCARDED  # Releaseboard's copy, not a removal
    held.release("after_push")
    job = wait_for_job(job)

    assert job.state == JobState.SUCCEEDED, job.message
    copied = AuditEvent.objects.get(action="staging.copied")
    assert copied.details == {"discarded_promotions": [promotion.pk], "reconciled": True}
    assert not DriftAlarm.objects.exists() and not AuditEvent.objects.filter(action="promotion.removed").exists()
    assert selectors.board(repository).features[0].name == "feature/copied-away"
