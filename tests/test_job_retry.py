"""Release managers see stuck and failed jobs, and retry them where that is safe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases import services
from releaseboard.releases.models import Branch, BranchState

pytestmark = pytest.mark.django_db


def _job(repository, kind, state, **fields):
    defaults = {
        "title": f"{kind} job",
        "scope_id": repository.pk,
        "scope_name": repository.name,
        "subject_type": "repository",
        "subject_id": repository.pk,
        "params": {"repository": repository.pk},
    }
    return Job.objects.create(kind=kind, state=state, **{**defaults, **fields})


def test_release_manager_retries_a_failed_staging_test(client, repository, release_manager):
    failed = _job(repository, "test_staging", JobState.FAILED, reason=JobReason.TESTS_FAILED)
    client.force_login(release_manager)

    response = client.post(
        reverse("web:job_retry", args=[failed.pk]), {"idempotency_key": "6a1c7c36-8f1e-4f69-9c39-0c0e7f3e8a11"}
    )

    retry = Job.objects.exclude(pk=failed.pk).get()
    assert retry.kind == "test_staging" and retry.state == JobState.QUEUED
    assert response.status_code == 302 and response.url == reverse("web:job_detail", args=[retry.pk])


def test_developer_cannot_retry_jobs(client, repository, developer):
    failed = _job(repository, "test_staging", JobState.FAILED)
    client.force_login(developer)
    assert client.post(reverse("web:job_retry", args=[failed.pk])).status_code == 403
    assert Job.objects.count() == 1


def test_a_release_is_not_retried_blindly(repository, release_manager):
    failed = _job(repository, "release", JobState.FAILED, params={"release": 1})
    with pytest.raises(services.Refused, match="confirm there"):
        services.retry_job(failed, actor=release_manager)


def test_a_running_job_is_not_retried(repository, release_manager):
    running = _job(repository, "sync", JobState.RUNNING)
    with pytest.raises(services.Refused, match="only failed or cancelled"):
        services.retry_job(running, actor=release_manager)


def test_a_job_without_its_repository_or_subject_is_refused_with_what_to_do(repository, release_manager):
    # Jobs keep scope_id and subject_id as plain numbers that may be empty: the retry says so
    # instead of failing on a lookup of None.
    unscoped = _job(repository, "sync", JobState.FAILED, scope_id=None)
    with pytest.raises(services.Refused, match="does not name its repository; start it again"):
        services.retry_job(unscoped, actor=release_manager)
    no_subject = _job(repository, "promote", JobState.FAILED, subject_type="promotion", subject_id=None)
    with pytest.raises(services.Refused, match="does not name its promotion; start it again"):
        services.retry_job(no_subject, actor=release_manager)
    assert Job.objects.count() == 2


def test_retrying_a_failed_branch_creation_requests_the_branch_again(repository, release_manager, developer):
    branch = Branch.objects.create(
        repository=repository, name="feature/x", kind="feature", state=BranchState.FAILED, requested_by=developer
    )
    failed = _job(
        repository,
        "create_branch",
        JobState.FAILED,
        subject_type="branch",
        subject_id=branch.pk,
        params={"branch": branch.pk},
    )

    retry = services.retry_job(failed, actor=release_manager)

    assert retry.kind == "create_branch" and retry.params == {"branch": branch.pk}
    assert Branch.objects.get(pk=branch.pk).state == BranchState.REQUESTED


def test_attention_page_lists_stuck_waiting_and_failed_jobs(client, repository, release_manager):
    long_ago = timezone.now() - timedelta(minutes=10)
    stuck = _job(repository, "sync", JobState.RUNNING, heartbeat_at=long_ago, title="Stuck sync")
    waiting = _job(repository, "sync", JobState.QUEUED, title="Waiting sync")
    Job.objects.filter(pk=waiting.pk).update(created_at=long_ago)
    failed = _job(
        repository,
        "test_staging",
        JobState.FAILED,
        finished_at=timezone.now(),
        reason=JobReason.TIMED_OUT,
        message="Test failed: timed out after 5 s",
        title="Slow test",
    )
    fresh = _job(repository, "sync", JobState.RUNNING, heartbeat_at=timezone.now(), title="Healthy sync")
    client.force_login(release_manager)

    page = client.get(reverse("web:job_attention")).content.decode()

    for job in (stuck, waiting, failed):
        assert job.title in page
    assert fresh.title not in page
    assert "timed out after 5 s" in page
    assert reverse("web:job_retry", args=[failed.pk]) in page


def test_a_queued_job_says_it_is_waiting_for_a_worker(client, repository, developer):
    queued = _job(repository, "sync", JobState.QUEUED)
    client.force_login(developer)
    page = client.get(reverse("web:job_detail", args=[queued.pk])).content.decode()
    assert "waiting for a worker" in page
    assert "not yet handed to the broker" in page
