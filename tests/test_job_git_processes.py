"""The git processes a promotion's real test and promote jobs start, counted where every
process starts (subprocess.Popen, which GitPython uses too): what the jobs can answer
from what they already know (the summary of staging stored for these heads, the merge
commit's own parent, the tree just written) starts none."""

from __future__ import annotations

import collections
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from releaseboard.jobs import execution
from releaseboard.jobs.models import Job, JobState
from releaseboard.releases import derived, services
from releaseboard.releases.models import Promotion, Repository
from releaseboard.releases.runners.common import mirror_for
from tests.flows import requested_promotion, sync

pytestmark = pytest.mark.django_db(transaction=True)

# Measured: 10 and 3. The test job: fetch, the "nothing to promote" merge-base, merge-tree,
# commit-tree, the review's log and its diff (numstat and patch in one), and the worktree's four: the one an earlier
# test job gave back is taken (repair, checkout, clean) and given back (repair), instead
# of a new one written out (prune, add: two processes, but every file of the tree).
# The promote job: fetch, push, staging's new commits over master. (No open branch is
# left for branch facts or the radar here.) Before: 14 and 9.
TEST_JOB_MAX_GIT = 10
PROMOTE_JOB_MAX_GIT = 3


def _run(job: Job, counts: collections.Counter[str]) -> dict[str, int]:
    counts.clear()
    with CaptureQueriesContext(connection):
        execution.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.message
    return dict(counts)


def test_a_promotions_jobs_start_only_the_git_processes_they_need(
    repository: Repository, remote: Any, developer: Any, release_manager: Any, git_processes: Any
) -> None:
    sync(repository, developer)
    promotion = requested_promotion(repository, remote, developer, "counted")

    tested = _run(Job.objects.get(kind="test_promotion", state=JobState.QUEUED), git_processes)
    promotion.refresh_from_db()
    services.promote(promotion, actor=release_manager)
    promoted = _run(Job.objects.get(kind="promote", state=JobState.QUEUED), git_processes)

    promotion = Promotion.objects.get(pk=promotion.pk)
    assert promotion.state == "promoted"
    assert remote.head("staging") == promotion.merge_sha
    # Staging's summary was stored for these heads by the job before: no log, no merge-base.
    # The tree of the merge commit is the one merge-tree wrote: no object read for it.
    assert tested.get("merge-base", 0) == 1 and "cat-file" not in tested, tested  # "nothing to promote?" only
    assert tested.get("log", 0) == 1, tested  # the review's list of the branch's commits
    # Staging was still the merge commit's parent: landed or not needs no git; after the
    # push, master is known to be in the new staging (it was in its parent).
    # The merge commit this mirror wrote is a loose object file: no object read for it.
    assert "merge-base" not in promoted and "cat-file" not in promoted, promoted
    assert promoted.get("log", 0) == 1, promoted  # staging's new commits over master
    assert sum(tested.values()) <= TEST_JOB_MAX_GIT, tested
    assert sum(promoted.values()) <= PROMOTE_JOB_MAX_GIT, promoted

    # What the jobs stored without asking git is what git says for these heads.
    repository.refresh_from_db()
    mirror = mirror_for(repository)
    heads = {"master": remote.head("master"), "staging": remote.head("staging")}  # the mirror's are pre-push
    assert repository.summary_key == derived.summary_key(heads["master"], heads["staging"])
    stored = (repository.staging_ahead, repository.master_in_staging)
    repository.summary_key = ""
    fresh = derived.staging_summary(mirror, repository, heads)
    assert stored == (fresh.ahead, fresh.master_in_staging) and fresh.has(promotion.merge_sha)
