"""Attempts to break the promotion safety guarantees (DESIGN.md §2, §5) by making the real
fault happen: real bare remotes pushed to with plain git behind Releaseboard's back, real
Celery worker processes paused, killed and cancelled at named fault points
(releaseboard.jobs.faults), an unreachable remote, and a remote whose reflog shows every
ref update that really happened.

Tests that need no concurrency run their jobs in this process (run_jobs); the others use
one worker process for the module, started with a fault directory, or a pair of workers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import reverse

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs import faults as fault_points
from releaseboard.jobs import reaper
from releaseboard.jobs.models import Job, JobReason, JobState, JobStep
from releaseboard.releases import selectors, services, sync
from releaseboard.releases.models import (
    Branch,
    Promotion,
    PromotionState,
    Release,
    ReleaseState,
    TestRun,
)
from releaseboard.releases.models import (
    TestResult as RunResult,
)
from tests.conftest import WorkerProcess, run_jobs, wait_for, wait_for_job
from tests.gitrepo import (
    CALC,
    TEST_CALC,
    first_parents,
    git,
    is_ancestor,
    log_ref_updates,
    ref_updates,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

STAGING = "refs/heads/staging"
CAS_PUSH = re.compile(r"--force-with-lease=refs/heads/staging:[0-9a-f]{40}(\s|$)")

# A test command that waits until a file exists (the test decides when the "tests" end).
GATE_SCRIPT = """\
import pathlib, sys, time
print("waiting for", sys.argv[1], flush=True)
while not pathlib.Path(sys.argv[1]).exists():
    time.sleep(0.05)
print("gate open", flush=True)
"""

# A test command that starts a child, writes both pids, and sleeps (for cancel).
SPAWN_SCRIPT = """\
import os, pathlib, subprocess, sys, time
out = pathlib.Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
(out / "child.pid").write_text(str(child.pid))
(out / "parent.pid").write_text(str(os.getpid()))
print("started", flush=True)
time.sleep(300)
"""


# -- workers and fault points ---------------------------------------------------------------


class Faults:
    """The fault directory the module's worker reads (see releaseboard.jobs.faults)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def arm(self, point: str, how: str = "pause") -> None:
        (self.folder / f"{point}.{how}").write_text("")

    def disarm(self, point: str, how: str = "pause") -> None:
        (self.folder / f"{point}.{how}").unlink(missing_ok=True)

    def wait_reached(self, point: str, job: Job, timeout: float = 60) -> None:
        wait_for(
            lambda: (self.folder / f"{point}.{job.pk}.reached").exists(),
            timeout=timeout,
            what=f"job #{job.pk} to reach {point}",
        )

    def clear(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()


class Workers:
    """The module's worker process, started on demand and stopped for in-process tests
    (a running worker would take jobs that a test means to run here, with its settings)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.faults = Faults(folder / "faults")
        self.faults.folder.mkdir()
        self.proc: WorkerProcess | None = None
        self.started = 0
        self.in_process = True

    def start(self) -> WorkerProcess:
        if self.proc is None:
            self.started += 1
            self.proc = WorkerProcess(
                self.folder / f"worker-{self.started}.log",
                name=f"safety{self.started}",
                extra_env={fault_points.ENV: str(self.faults.folder)},
            )
        self.in_process = False
        return self.proc

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        self.in_process = True


_workers: Workers | None = None


@pytest.fixture(scope="module")
def module_workers(
    django_db_setup: None, django_db_blocker: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    global _workers
    _workers = Workers(tmp_path_factory.mktemp("safety-workers"))
    yield _workers
    _workers.stop()
    _workers = None


@pytest.fixture
def in_process(module_workers: Workers) -> None:
    """Jobs run in this test's process (run_jobs), with its settings overrides."""
    module_workers.stop()


@pytest.fixture
def faults(module_workers: Workers) -> Iterator[Faults]:
    """A real worker process with fault points; the points are cleared after the test
    (before the conftest's settle_jobs waits for running jobs to stop)."""
    module_workers.faults.clear()
    module_workers.start()
    yield module_workers.faults
    module_workers.faults.clear()


@pytest.fixture
def two_workers(module_workers: Workers, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    module_workers.stop()
    pair: list[WorkerProcess] = []
    try:
        for name in ("pair1", "pair2"):
            pair.append(WorkerProcess(tmp_path / f"{name}.log", name=name, concurrency=1))
        module_workers.in_process = False
        yield pair
    finally:
        for worker in pair:
            worker.stop()
        module_workers.in_process = True


def settle(timeout: float = 120) -> None:
    """Run (in-process) or wait for (worker) every queued and running job to end."""
    if _workers is None or _workers.in_process:
        run_jobs()
    else:
        wait_for(
            lambda: not Job.objects.filter(state__in=JobState.active()).exists(),
            timeout=timeout,
            what="all jobs to end",
        )


# -- the release process, step by step ----------------------------------------------------


def ready(repository, actor):
    """The first sync imports the heads and tests the staging head."""
    services.refresh(repository, actor=actor)
    settle()
    repository.refresh_from_db()
    assert selectors.has_passing_test(repository, selectors.head(repository, "staging"))


def feature(repository, remote, developer, name, files=None) -> Branch:
    branch = services.request_branch(repository, actor=developer, kind="feature", name=name, purpose="work")
    settle()
    if files:
        remote.commit_on(branch.name, files, f"Work on {name}")
    return Branch.objects.get(pk=branch.pk)


def passed_promotion(branch, developer) -> Promotion:
    """Request the promotion and let its merge with the current staging pass its tests."""
    promotion = services.request_promotion(branch, actor=developer, title=f"Promote {branch.name}")
    settle()
    job = Job.objects.filter(kind="test_promotion", subject_id=promotion.pk).first()
    assert job is not None, "requesting a promotion queues its test"
    assert job.state == JobState.SUCCEEDED, job.message
    promotion.refresh_from_db()
    assert selectors.has_passing_test(branch.repository, promotion.merge_sha)
    return promotion


def landed(repository, remote, developer, release_manager, name, files) -> Promotion:
    promotion = passed_promotion(feature(repository, remote, developer, name, files), developer)
    services.promote(promotion, actor=release_manager)
    settle()
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED, promotion.state_message
    return promotion


def adopt_drift(release_manager) -> None:
    """Invariant 6: a direct push to staging stops promotions until a release manager adopts it."""
    from releaseboard.policy import service as policy
    from releaseboard.policy.models import DriftAlarm

    alarm = DriftAlarm.objects.get(state="open")
    policy.adopt_head(alarm, actor=release_manager, reason="Reviewed the direct push", found_sha=alarm.found_sha)


def jobs_of(promotion: Promotion, kind: str) -> list[Job]:
    return list(Job.objects.filter(subject_type="promotion", subject_id=promotion.pk, kind=kind).order_by("id"))


def log_text(job: Job) -> str:
    return "".join(job.log.values_list("text", flat=True))


def assert_tested_as_landed(repository, remote, sha: str) -> None:
    """Invariant 1: the exact commit on the remote passed a test recorded against it and its tree."""
    run = TestRun.objects.filter(repository=repository, commit_sha=sha, result=RunResult.PASSED).first()
    assert run is not None, f"{sha} landed without a passing test"
    assert run.tree_sha == remote.tree(sha)


def assert_only_cas_pushes(jobs: list[Job]) -> None:
    """Invariant 2: every push a job ran named the SHA it expected on staging; never a bare force."""
    pushes = [s.command for s in JobStep.objects.filter(job__in=jobs) if " push " in f" {s.command} "]
    assert pushes, "no push was recorded"
    for command in pushes:
        words = command.split()
        assert "--force" not in words and "-f" not in words and "--force-with-lease" not in words, command
        if "refs/heads/staging" in command:
            assert CAS_PUSH.search(command), command


def gate(tmp_path: Path, repository, name: str = "gate") -> Path:
    """Make the repository's test command wait for a file; returns the file to create."""
    script = tmp_path / "gate.py"
    script.write_text(GATE_SCRIPT)
    flag = tmp_path / name
    repository.test_command = f"python3 {script} {flag}"
    repository.save(update_fields=["test_command"])
    return flag


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie nobody reaped yet (PID 1 in a container may not) is dead too
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


RENAMED = {"calc.py": CALC.replace("def add(", "def plus("), "test_calc.py": TEST_CALC.replace("calc.add", "calc.plus")}
USES_OLD_NAME = {
    "total.py": "import calc\n\n\ndef total(xs):\n    result = 0\n    for x in xs:\n"
    "        result = calc.add(result, x)\n"
    "    return result\n",
    "test_total.py": "import unittest\nimport total\n\n\nclass TotalTest(unittest.TestCase):\n"
    "    def test_total(self):\n        self.assertEqual(total.total([1, 2, 3]), 6)\n",
}


# == in-process scenarios (no worker: run_jobs runs each job here) ==========================


def test_two_branches_that_break_together_are_caught_before_staging(
    in_process, repository, remote, developer, release_manager
):
    ready(repository, developer)
    rename = feature(repository, remote, developer, "rename", RENAMED)
    caller = feature(repository, remote, developer, "total", USES_OLD_NAME)
    first, second = passed_promotion(rename, developer), passed_promotion(caller, developer)
    assert first.staging_sha == second.staging_sha  # each passed alone against the same staging

    services.promote(first, actor=release_manager)
    settle()
    first.refresh_from_db()
    assert first.state == PromotionState.PROMOTED and remote.head("staging") == first.merge_sha

    services.promote(second, actor=release_manager)
    settle()

    second.refresh_from_db()
    promote_job, retest = jobs_of(second, "promote")[-1], jobs_of(second, "test_promotion")[-1]
    assert promote_job.state == JobState.SUCCEEDED and "moved since the test" in promote_job.message
    assert retest.state == JobState.FAILED and retest.reason == JobReason.TESTS_FAILED, retest.message
    assert second.state == PromotionState.FAILED and "failed" in second.state_message
    # The re-test merged the branch into the NEW staging, and that merge failed as that commit.
    assert second.staging_sha == first.merge_sha
    assert TestRun.objects.get(commit_sha=second.merge_sha).result == RunResult.FAILED
    assert remote.head("staging") == first.merge_sha
    assert_tested_as_landed(repository, remote, remote.head("staging"))


def test_the_branch_head_moving_after_its_test_does_not_change_what_lands(
    in_process, repository, remote, developer, release_manager
):
    ready(repository, developer)
    promotion = passed_promotion(feature(repository, remote, developer, "later", {"later.py": "L = 1\n"}), developer)
    staging_before = remote.head("staging")
    # The developer pushes again (untested, and broken) after the test passed.
    newer = remote.commit_on("feature/later", {"calc.py": CALC.replace("a + b", "a - b")}, "Untested")

    services.promote(promotion, actor=release_manager)
    jobs = run_jobs()

    assert [j.kind for j in jobs] == ["promote"]  # staging did not move: no re-test, the tested merge lands
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED
    assert remote.head("staging") == promotion.merge_sha
    assert remote.parents("staging") == [staging_before, promotion.branch_sha]
    assert promotion.branch_sha != newer and not is_ancestor(remote, newer, "staging")
    assert_tested_as_landed(repository, remote, promotion.merge_sha)


def test_a_promotion_whose_staging_keeps_moving_stops_at_the_retest_cap(
    in_process, settings, repository, remote, developer, release_manager
):
    settings.PROMOTION_MAX_RETESTS = 0
    ready(repository, developer)
    promotion = passed_promotion(feature(repository, remote, developer, "capped", {"capped.py": "C = 1\n"}), developer)
    theirs = remote.commit_on("staging", {"direct.py": "D = 1\n"}, "Pushed straight to staging")

    services.promote(promotion, actor=release_manager)
    settle()

    job = jobs_of(promotion, "promote")[-1]
    assert job.state == JobState.FAILED and job.reason == JobReason.TARGET_MOVED
    assert "staging moved since the test" in job.message and "kept moving" in job.message
    assert not jobs_of(promotion, "test_promotion")[1:]  # no re-test past the cap
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.FAILED
    assert remote.head("staging") == theirs


def test_a_queued_release_fails_when_master_moved_and_neither_master_nor_the_tag_moves(
    in_process, repository, remote, developer, release_manager
):
    ready(repository, developer)
    landed(repository, remote, developer, release_manager, "one", {"one.py": "O = 1\n"})
    repository.refresh_from_db()
    release = services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")
    direct = remote.commit_on("master", {"direct.py": "D = 1\n"}, "Pushed straight to master")  # before the job runs

    settle()

    job = Job.objects.get(kind="release", subject_id=release.pk)
    assert job.state == JobState.FAILED and job.reason == JobReason.TARGET_MOVED, job.message
    release.refresh_from_db()
    assert release.state == ReleaseState.FAILED
    assert remote.head("master") == direct and not remote.exists("refs/tags/v0.1.0")
    # And now that the board knows, "Promote to master" is refused up front.
    repository.refresh_from_db()
    with pytest.raises(services.Refused, match="not an ancestor"):
        services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")


def test_a_release_tag_created_before_the_release_job_runs_stops_the_release(
    in_process, repository, remote, developer, release_manager
):
    ready(repository, developer)
    landed(repository, remote, developer, release_manager, "one", {"one.py": "O = 1\n"})
    repository.refresh_from_db()
    master_before = remote.head("master")
    release = services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")
    git("push", "-q", "origin", f"{master_before}:refs/tags/v0.1.0", cwd=remote.work)

    settle()

    job = Job.objects.get(kind="release", subject_id=release.pk)
    assert job.state == JobState.FAILED and "v0.1.0 already exists" in job.message
    assert Release.objects.get(pk=release.pk).state == ReleaseState.FAILED
    assert remote.head("master") == master_before and remote.tag_target("v0.1.0") == master_before


def test_a_worker_whose_mirror_lacks_the_tested_merge_rebuilds_it_and_promotes(
    in_process, settings, tmp_path, repository, remote, developer, release_manager
):
    """Another machine's worker (its own WORK_DIR, so its own mirror) runs the promote job
    for a merge commit that only the testing worker's mirror has."""
    ready(repository, developer)
    promotion = passed_promotion(feature(repository, remote, developer, "elsewhere", {"e.py": "E = 1\n"}), developer)
    settings.WORK_DIR = tmp_path / "other-machine"

    services.promote(promotion, actor=release_manager)
    settle()

    job = jobs_of(promotion, "promote")[-1]
    assert job.state == JobState.SUCCEEDED, job.message
    assert remote.head("staging") == promotion.merge_sha
    assert any("commit-tree" in s.command for s in job.steps.all())  # it did rebuild the commit
    assert (settings.WORK_DIR / "mirrors").is_dir()


def test_a_worker_without_the_tested_merge_tree_rebuilds_tree_and_commit_and_promotes(
    in_process, settings, tmp_path, repository, remote, developer, release_manager
):
    """The merge result is a tree no commit on the remote has (staging moved since the
    branch forked): a worker whose mirror never saw the test recomputes it with merge-tree."""
    ready(repository, developer)
    first = passed_promotion(feature(repository, remote, developer, "first", {"f.py": "F = 1\n"}), developer)
    later = feature(repository, remote, developer, "later", {"l.py": "L = 1\n"})
    services.promote(first, actor=release_manager)
    settle()
    promotion = passed_promotion(later, developer)
    assert promotion.merge_tree not in {remote.tree(promotion.staging_sha), remote.tree(promotion.branch_sha)}
    settings.WORK_DIR = tmp_path / "other-machine"

    services.promote(promotion, actor=release_manager)
    settle()

    job = jobs_of(promotion, "promote")[-1]
    assert job.state == JobState.SUCCEEDED, job.message
    assert remote.head("staging") == promotion.merge_sha
    assert any("merge-tree" in s.command for s in job.steps.all())


def test_the_same_form_submitted_twice_makes_one_branch_one_promotion_and_one_promote(
    in_process, client, repository, remote, developer, release_manager
):
    ready(repository, developer)
    log_ref_updates(remote)
    client.force_login(release_manager)  # a release manager may do all a developer may
    key = "0b1c7a4e-3f52-4d4f-9a35-1f6f0c2d8e11"

    def twice(url: str, data: dict[str, str], key: str) -> None:
        for _ in range(2):
            response = client.post(url, {**data, "idempotency_key": key})
            assert response.status_code in (200, 302)

    twice(
        reverse("web:branch_request", args=[repository.name]),
        {"kind": "feature", "name": "twice", "purpose": "Double click"},
        key,
    )
    assert Branch.objects.filter(name="feature/twice").count() == 1
    assert Job.objects.filter(kind="create_branch").count() == 1
    settle()
    branch = Branch.objects.get(name="feature/twice")
    remote.commit_on(branch.name, {"twice.py": "T = 2\n"}, "Twice")

    twice(
        reverse("web:promotion_request", args=[repository.name, branch.pk]),
        {"title": "Twice", "description": ""},
        key.replace("0b1c", "1b1c"),
    )
    assert Promotion.objects.count() == 1
    promotion = Promotion.objects.get()
    assert len(jobs_of(promotion, "test_promotion")) == 1
    settle()

    twice(reverse("web:promotion_promote", args=[repository.name, promotion.pk]), {}, key.replace("0b1c", "2b1c"))
    assert len(jobs_of(promotion, "promote")) == 1
    settle()
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED
    assert ref_updates(remote, STAGING) == [(promotion.staging_sha, promotion.merge_sha)]  # staging moved once


# == two worker processes ===================================================================


def test_two_promotions_clicked_at_once_on_two_workers_both_land_one_after_the_other(
    two_workers, repository, remote, developer, release_manager
):
    log_ref_updates(remote)
    ready(repository, developer)
    start = remote.head("staging")
    left = passed_promotion(feature(repository, remote, developer, "left", {"left.py": "L = 1\n"}), developer)
    right = passed_promotion(feature(repository, remote, developer, "right", {"right.py": "R = 1\n"}), developer)

    services.promote(left, actor=release_manager)
    services.promote(right, actor=release_manager)
    settle()

    left.refresh_from_db()
    right.refresh_from_db()
    assert (left.state, right.state) == (PromotionState.PROMOTED, PromotionState.PROMOTED), (
        left.state_message,
        right.state_message,
    )
    assert sorted([left.retests, right.retests]) == [0, 1]  # the second one re-merged and re-tested
    for promotion in (left, right):
        assert_tested_as_landed(repository, remote, promotion.merge_sha)
    history = first_parents(remote, "staging")
    assert left.merge_sha in history and right.merge_sha in history
    # The remote's own record: two updates of staging, each a fast-forward of the previous one.
    updates = ref_updates(remote, STAGING)
    assert len(updates) == 2 and updates[0][0] == start
    assert updates[1][0] == updates[0][1] and updates[1][1] == remote.head("staging")
    assert all(is_ancestor(remote, old, new) for old, new in updates)
    assert_only_cas_pushes(jobs_of(left, "promote") + jobs_of(right, "promote"))


# == one worker process with fault points ===================================================


def test_a_direct_push_to_staging_during_the_tests_survives_and_the_promotion_lands_on_top(
    faults, tmp_path, repository, remote, developer, release_manager
):
    ready(repository, developer)
    branch = feature(repository, remote, developer, "ontop", {"ontop.py": "T = 1\n"})
    flag = gate(tmp_path, repository)
    promotion = services.request_promotion(branch, actor=developer, title="On top")
    test_job = Job.objects.get(kind="test_promotion", subject_id=promotion.pk)
    wait_for(lambda: "waiting for" in log_text(test_job), what="the tests to start")
    tested_base = remote.head("staging")

    theirs = remote.commit_on("staging", {"theirs.py": "T = 2\n"}, "Pushed straight to staging")
    flag.touch()
    assert wait_for_job(test_job).state == JobState.SUCCEEDED
    promotion.refresh_from_db()
    assert promotion.staging_sha == tested_base
    # Invariant 6: the direct push raises an alarm; a release manager reviews and adopts it first.
    services.refresh(repository, actor=developer)
    settle()
    adopt_drift(release_manager)

    services.promote(promotion, actor=release_manager)
    settle()

    promotion.refresh_from_db()
    first_promote = jobs_of(promotion, "promote")[0]
    assert "staging moved since the test" in first_promote.message
    assert promotion.state == PromotionState.PROMOTED and promotion.retests == 1
    assert remote.head("staging") == promotion.merge_sha
    assert remote.parents("staging") == [theirs, promotion.branch_sha]
    assert is_ancestor(remote, theirs, "staging")
    assert_tested_as_landed(repository, remote, promotion.merge_sha)


def test_a_push_behind_releaseboards_back_at_the_last_moment_is_refused_and_the_promotion_retests(
    faults, repository, remote, developer, release_manager
):
    ready(repository, developer)
    promotion = passed_promotion(feature(repository, remote, developer, "race", {"race.py": "R = 1\n"}), developer)
    faults.arm("before_push")
    job = services.promote(promotion, actor=release_manager)
    faults.wait_reached("before_push", job)

    theirs = remote.commit_on("staging", {"theirs.py": "T = 1\n"}, "Pushed while Releaseboard was about to")
    faults.disarm("before_push")
    settle()

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and "moved during the promotion" in job.message
    assert "stale info" in job.message  # the remote's compare-and-swap refused it
    push = JobStep.objects.get(job=job, command__contains=" push ")
    assert push.outcome == "failed"
    assert CAS_PUSH.search(push.command) and f"refs/heads/staging:{promotion.staging_sha}" in push.command
    # Invariant 6: the re-tested promotion is refused until a release manager adopts the direct push.
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.FAILED and "changed outside Releaseboard" in promotion.state_message
    adopt_drift(release_manager)
    services.promote(promotion, actor=release_manager)
    settle()
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED and promotion.retests == 0
    assert is_ancestor(remote, theirs, "staging") and remote.parents("staging")[0] == theirs
    assert_tested_as_landed(repository, remote, remote.head("staging"))
    assert_only_cas_pushes(jobs_of(promotion, "promote"))


def test_master_and_its_tag_move_together_or_not_at_all(faults, repository, remote, developer, release_manager):
    ready(repository, developer)
    landed(repository, remote, developer, release_manager, "one", {"one.py": "O = 1\n"})
    repository.refresh_from_db()
    master_before, elsewhere = remote.head("master"), remote.head("feature/one")
    faults.arm("before_push")
    release = services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")
    job = Job.objects.get(kind="release", subject_id=release.pk)
    faults.wait_reached("before_push", job)
    # The worker already checked the tag is free; someone takes the name now.
    git("push", "-q", "origin", f"{elsewhere}:refs/tags/v0.1.0", cwd=remote.work)
    faults.disarm("before_push")

    job = wait_for_job(job)

    assert job.state == JobState.FAILED and job.reason == JobReason.TARGET_MOVED, job.message
    push = JobStep.objects.get(job=job, command__contains=" push ")
    assert "--atomic" in push.command.split()
    assert remote.head("master") == master_before  # the master half of the push did not land
    assert remote.tag_target("v0.1.0") == elsewhere  # and the tag did not move


@pytest.mark.parametrize("outcome", ["tests_failed", "timed_out", "cancelled"])
def test_a_retest_that_fails_times_out_or_is_cancelled_leaves_staging_untouched(
    faults, tmp_path, outcome, repository, remote, developer, release_manager
):
    ready(repository, developer)
    promotion = passed_promotion(feature(repository, remote, developer, "doomed", {"doomed.py": "D = 1\n"}), developer)
    # Staging moves (tested by a sync), so "Promote to staging" must merge and test again.
    theirs = remote.commit_on("staging", {"theirs.py": "T = 1\n"}, "Pushed straight to staging")
    services.refresh(repository, actor=developer)
    settle()
    assert selectors.has_passing_test(repository, theirs)
    adopt_drift(release_manager)  # invariant 6: reviewed and adopted before promotions resume
    repository.refresh_from_db()
    if outcome == "tests_failed":
        repository.test_command = 'python3 -c "raise SystemExit(1)"'
    elif outcome == "timed_out":
        repository.test_command, repository.test_timeout = 'python3 -c "import time; time.sleep(60)"', 5
    else:
        gate(tmp_path, repository)
    repository.save()

    services.promote(promotion, actor=release_manager)
    wait_for(lambda: len(jobs_of(promotion, "test_promotion")) == 2, what="the re-test")
    retest = jobs_of(promotion, "test_promotion")[-1]
    if outcome == "cancelled":
        wait_for(lambda: "waiting for" in log_text(retest), what="the re-test to run")
        services.cancel_job(retest, actor=release_manager)
    settle()

    retest.refresh_from_db()
    assert retest.state == (JobState.CANCELLED if outcome == "cancelled" else JobState.FAILED)
    assert retest.reason == outcome, retest.message
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.FAILED and promotion.promoted_sha == ""
    assert remote.head("staging") == theirs
    assert len(jobs_of(promotion, "promote")) == 1  # nothing was promoted after the re-test


def test_a_plain_git_push_to_a_feature_branch_is_found_by_polling_and_recorded(faults, repository, remote, developer):
    ready(repository, developer)
    branch = feature(repository, remote, developer, "polled")
    assert sync.poll_remotes() == 0  # nothing changed since the sync

    pushed = remote.commit_on(branch.name, {"polled.py": "P = 1\n"}, "Pushed with plain git")
    assert sync.poll_remotes() == 1
    settle()

    branch.refresh_from_db()
    assert branch.head_sha == pushed
    assert Job.objects.filter(kind="sync").latest("id").state == JobState.SUCCEEDED
    assert sync.poll_remotes() == 0


def test_a_push_whose_outcome_is_unknown_is_left_to_the_next_sync(
    faults, repository, remote, developer, release_manager
):
    ready(repository, developer)
    promotion = passed_promotion(feature(repository, remote, developer, "dark", {"dark.py": "D = 1\n"}), developer)
    staging_before = remote.head("staging")
    faults.arm("before_push")
    job = services.promote(promotion, actor=release_manager)
    faults.wait_reached("before_push", job)
    hidden = remote.bare.with_name("remote-away.git")
    remote.bare.rename(hidden)  # the remote is unreachable now
    try:
        faults.disarm("before_push")
        job = wait_for_job(job)
    finally:
        hidden.rename(remote.bare)

    assert job.state == JobState.FAILED and job.reason == JobReason.GIT_ERROR
    assert "settled by the next sync" in job.message and "nothing is pushed again blindly" in job.message
    assert remote.head("staging") == staging_before
    assert Promotion.objects.get(pk=promotion.pk).state == PromotionState.FAILED
    # The next sync reads the remote: the promotion did not land, and nothing was pushed.
    services.refresh(repository, actor=developer)
    settle()
    assert Promotion.objects.get(pk=promotion.pk).state == PromotionState.FAILED
    assert remote.head("staging") == staging_before


def test_a_worker_killed_right_after_its_push_is_reconciled_by_the_next_sync_without_pushing_again(
    faults, repository, remote, developer, release_manager
):
    log_ref_updates(remote)
    ready(repository, developer)
    promotion = passed_promotion(feature(repository, remote, developer, "killed", {"killed.py": "K = 1\n"}), developer)
    faults.arm("after_push", "crash")
    job = services.promote(promotion, actor=release_manager)
    faults.wait_reached("after_push", job)
    faults.disarm("after_push", "crash")
    assert remote.head("staging") == promotion.merge_sha  # it landed; the DB does not know yet
    assert Promotion.objects.get(pk=promotion.pk).state == PromotionState.PROMOTING

    sync_job = wait_for_job(services.refresh(repository, actor=developer))

    assert sync_job.state == JobState.SUCCEEDED, sync_job.message
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED and promotion.promoted_sha == promotion.merge_sha
    assert AuditEvent.objects.filter(action="promotion.reconciled", object_id=promotion.pk).count() == 1
    # The killed job, run again once its lease ran out, finds it landed and pushes nothing.
    wait_for(lambda: reaper.reap()["requeued"] == 1, timeout=30, what="the reaper to requeue the killed job")
    job = wait_for_job(job)
    assert job.state == JobState.SUCCEEDED and job.attempt == 2, job.message
    assert ref_updates(remote, STAGING) == [(promotion.staging_sha, promotion.merge_sha)]
    assert (
        AuditEvent.objects.filter(
            action__in=["promotion.promoted", "promotion.reconciled"], object_id=promotion.pk
        ).count()
        == 1
    )


def test_cancelling_a_promote_job_waiting_to_push_leaves_staging_untouched(
    faults, repository, remote, developer, release_manager
):
    """The cancel arrives while the job is between its last cancel check and the push (held
    there by the before_push fault point): "nothing was pushed after the cancel" must hold."""
    ready(repository, developer)
    promotion = passed_promotion(
        feature(repository, remote, developer, "stopped", {"stopped.py": "S = 1\n"}), developer
    )
    staging_before = remote.head("staging")
    faults.arm("before_push")
    job = services.promote(promotion, actor=release_manager)
    faults.wait_reached("before_push", job)

    services.cancel_job(job, actor=release_manager)
    faults.disarm("before_push")
    job = wait_for_job(job)

    assert remote.head("staging") == staging_before
    assert job.state == JobState.CANCELLED and job.reason == JobReason.CANCELLED, job.message
    assert Promotion.objects.get(pk=promotion.pk).state == PromotionState.FAILED


def test_cancelling_a_test_job_kills_its_whole_process_group(
    faults, tmp_path, repository, remote, developer, release_manager
):
    ready(repository, developer)
    branch = feature(repository, remote, developer, "spawner", {"spawn.py": "S = 1\n"})
    script, pids = tmp_path / "spawn.py", tmp_path / "pids"
    script.write_text(SPAWN_SCRIPT)
    pids.mkdir()
    repository.test_command = f"python3 {script} {pids}"
    repository.save(update_fields=["test_command"])
    promotion = services.request_promotion(branch, actor=developer, title="Spawner")
    job = Job.objects.get(kind="test_promotion", subject_id=promotion.pk)
    wait_for(lambda: (pids / "parent.pid").exists() and (pids / "child.pid").exists(), what="the test processes")
    parent, child = int((pids / "parent.pid").read_text()), int((pids / "child.pid").read_text())
    assert alive(parent) and alive(child)

    services.cancel_job(job, actor=release_manager)
    job = wait_for_job(job, timeout=30)

    assert job.state == JobState.CANCELLED
    wait_for(lambda: not alive(parent) and not alive(child), timeout=10, what="the test's processes to be gone")
    assert not TestRun.objects.filter(promotion=promotion).exists()
