"""A job that must wait for its repository's lease gives its worker slot back: two
worker processes keep serving two repositories while a third repository's long job
holds that repository's lease (one writer per repository is proven in test_worker_faults.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from releaseboard.jobs.models import Job, JobState, Lease
from releaseboard.releases import services
from releaseboard.releases.models import Repository
from tests.conftest import WorkerProcess, run_jobs, wait_for, wait_for_job
from tests.gitrepo import TEST_COMMAND, Remote

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _repository(name: str, tmp_path: Path, actor: Any) -> Repository:
    remote = Remote(tmp_path / name)
    repository = Repository.objects.create(name=name, remote_url=remote.url, test_command=TEST_COMMAND, test_timeout=60)
    services.refresh(repository, actor=actor)
    run_jobs(scope_id=repository.pk)
    return repository


def _request_branch(repository: Repository, actor: Any, name: str) -> Job:
    branch = services.request_branch(repository, actor=actor, kind="feature", name=name, purpose="work")
    return Job.objects.get(kind="create_branch", subject_id=branch.pk)


def test_jobs_waiting_for_a_held_repository_do_not_take_the_workers_of_other_repositories(
    tmp_path: Path, developer: Any, settings: Any
) -> None:
    a, b, c = (_repository(name, tmp_path, developer) for name in ("alpha", "beta", "gamma"))
    # A long job of gamma holds gamma's lease (say a release waiting on a slow remote).
    Lease.objects.update_or_create(
        key=c.lock_key,
        defaults={
            "holder_job_id": None,
            "holder_token": "long-job",
            "expires_at": timezone.now() + dt.timedelta(hours=1),
        },
    )
    workers = [WorkerProcess(tmp_path / f"worker{i}.log", name=f"w{i}", concurrency=1) for i in (1, 2)]
    try:
        # gamma's jobs are queued first, one per worker: in a waiting loop they would hold both.
        waiting = [_request_branch(c, developer, f"gamma-{i}") for i in (1, 2)]
        wait_for(
            lambda: all("Waiting for" in Job.objects.get(pk=j.pk).message for j in waiting),
            timeout=30,
            what="gamma's jobs to be postponed",
        )
        served = [_request_branch(a, developer, "alpha-1"), _request_branch(b, developer, "beta-1")]
        for job in served:
            assert wait_for_job(job, timeout=60).state == JobState.SUCCEEDED, job.message
        for job in waiting:
            job.refresh_from_db()
            assert job.state == JobState.QUEUED and job.attempt == 0, "never claimed while the lease is held"
            assert f"Waiting for {c.lock_key}" in job.message

        # The long job ends: gamma's jobs run, one writer at a time.
        Lease.objects.filter(key=c.lock_key).update(holder_token="", holder_job_id=None, expires_at=None)
        finished = [wait_for_job(job, timeout=60) for job in waiting]
        assert [job.state for job in finished] == [JobState.SUCCEEDED, JobState.SUCCEEDED]
    finally:
        for worker in workers:
            worker.stop()
