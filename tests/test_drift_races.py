"""The drift check racing Releaseboard's own pushes, with a real Celery worker held at a
fault point (releaseboard.jobs.faults) while another job runs in this process: a sync
never mistakes Releaseboard's push for drift, nor a rewind for Releaseboard's push."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs import faults as fault_points
from releaseboard.jobs.models import Job, JobLogLine, JobState
from releaseboard.policy.models import DriftAlarm, DriftState
from releaseboard.releases import selectors, services
from releaseboard.releases.models import ExpectedMove, MoveState, PromotionState, ReleaseState
from tests.conftest import WorkerProcess, run_jobs, wait_for, wait_for_job
from tests.flows import landed_promotion, passed_promotion
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


def test_a_release_whose_mirror_cannot_be_read_after_its_push_is_still_recorded(
    held, repository, remote, developer, release_manager
):
    sync_now(repository, developer)
    first = landed_promotion(repository, remote, developer, release_manager, "first")
    second = passed_promotion(repository, remote, developer, "second")
    release = services.promote_to_master(repository, actor=release_manager, version="1.0.0", notes="")
    services.promote(second, actor=release_manager)
    run_jobs(kind="promote")  # staging moves past the release's commit before the release job runs
    second.refresh_from_db()
    assert second.state == PromotionState.PROMOTED and release.sha == first.merge_sha != remote.head("staging")
    job = Job.objects.get(kind="release", state=JobState.QUEUED)
    held.start()
    held.hold("after_push")
    held.wait_held("after_push", job.pk)
    assert remote.head("master") == release.sha  # pushed, nothing recorded yet
    # A disk fault: the mirror loses the commit the job must place (is the second promotion in the release?).
    lost = (
        settings.WORK_DIR / "mirrors" / f"{repository.pk}.git" / "objects" / second.merge_sha[:2] / second.merge_sha[2:]
    )
    kept = lost.read_bytes()
    lost.unlink()
    held.release("after_push")
    job = wait_for_job(job)
    lost.write_bytes(kept)  # the fault passes

    assert job.state == JobState.SUCCEEDED, job.message
    release.refresh_from_db()
    first.refresh_from_db()
    second.refresh_from_db()
    assert release.state == ReleaseState.RELEASED
    # Its merge commit is the release's own: placed without git.
    assert (first.state, first.release_id) == (PromotionState.RELEASED, release.pk)
    assert second.state == PromotionState.PROMOTED  # not in the release, and git could not say: left for the next
    log = "".join(JobLogLine.objects.filter(job=job).values_list("text", flat=True))
    assert "could not be read after the push" in log
    repository.refresh_from_db()
    assert repository.summary_key == ""  # no preview kept for heads it was not computed for

    sync_now(repository, developer)

    assert not DriftAlarm.objects.exists()
    preview = selectors.release_preview(repository)
    assert [c["sha"] for c in preview.commits][:1] == [second.merge_sha] and preview.promotions == [second]
