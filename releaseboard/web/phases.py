"""One explicit state for a promotion, the same on every page, and what happens next.

The rows keep their own states (a promotion's state, its merge check, the latest test
of its merge result, the policy); a reader should not have to decode four badges. This
module folds them into one of the states below, in the order a promotion meets them,
with one sentence that says what happens next and who acts.
"""

from __future__ import annotations

from dataclasses import dataclass

from releaseboard.jobs.models import Job, JobState
from releaseboard.releases.models import MergeCheck, Promotion, PromotionState, TestResult, TestRun

TESTING = "Testing"
TESTS_FAILED = "Tests failed"
CONFLICTS = "Conflicts"
NOTHING = "Nothing to promote"
WAITING = "Waiting"
READY = "Ready to promote"
PROMOTING = "Promoting"
PROMOTED = "Promoted"
RELEASED = "Released"
CLOSED = "Closed"

TONES = {
    TESTING: "busy",
    TESTS_FAILED: "bad",
    CONFLICTS: "bad",
    NOTHING: "neutral",
    WAITING: "busy",
    READY: "good",
    PROMOTING: "busy",
    PROMOTED: "good",
    RELEASED: "good",
    CLOSED: "neutral",
}


@dataclass(frozen=True)
class Phase:
    label: str
    next: str  # one sentence: what happens next, and who acts

    @property
    def tone(self) -> str:
        return TONES[self.label]

    @property
    def slug(self) -> str:
        return self.label.lower().replace(" ", "-")


def phase(
    promotion: Promotion,
    test: TestRun | None,
    passing: bool,
    *,
    refusal: str = "",
    job: Job | None = None,
) -> Phase:
    """The promotion's one state. `test` is the latest test of its merge result, `passing`
    whether any test of that result passed, `refusal` why the policy stops it now (a lock,
    freeze or drift alarm), `job` its latest job."""
    branch = promotion.branch.name
    staging = promotion.repository.staging_branch
    state = promotion.state
    if state == PromotionState.PROMOTING and job is not None and job.waits and job.state == JobState.QUEUED:
        return Phase(WAITING, job.message or "Its promote job waits for a required CI status.")
    if state == PromotionState.PROMOTING:
        return Phase(PROMOTING, f"Its promote job is pushing the tested merge result to {staging}; nothing to do.")
    if state == PromotionState.PROMOTED:
        return Phase(PROMOTED, f"In {staging}; a release manager takes it to master with the next release.")
    if state == PromotionState.RELEASED:
        tag = promotion.release.tag if promotion.release else ""
        return Phase(RELEASED, f"Released{' in ' + tag if tag else ''}; nothing more to do.")
    if state == PromotionState.REMOVED:
        return Phase(
            CLOSED,
            f"Someone removed its merge commit from {staging} outside Releaseboard; {branch} is active again: "
            "request a new promotion to bring it back.",
        )
    if state in (PromotionState.DISCARDED, PromotionState.CLOSED):
        return Phase(CLOSED, "No longer waiting for anything; request a new promotion to try again.")
    running = job is not None and job.is_active
    if passing and not running:
        if refusal:
            return Phase(WAITING, refusal)
        return Phase(READY, f"A release manager may promote the tested merge result to {staging} now.")
    if promotion.merge_check == MergeCheck.CONFLICT and not running:
        return Phase(
            CONFLICTS,
            f"The owner merges {staging} into {branch}, resolves the files listed, pushes, and runs the tests again.",
        )
    if promotion.merge_check == MergeCheck.NOTHING and not running:
        return Phase(NOTHING, f"{branch} has nothing {staging} lacks; push commits to it, then run the tests again.")
    if test is not None and test.result == TestResult.FAILED and not running:
        return Phase(TESTS_FAILED, f"The owner fixes {branch}, pushes, and runs the tests again.")
    if job is not None and job.state in (JobState.FAILED, JobState.CANCELLED) and not running:
        why = job.message.strip().rstrip(".") or job.get_reason_display()
        return Phase(TESTS_FAILED, f"Its test job stopped ({why}); run the tests again.")
    return Phase(TESTING, f"Its merge with the current {staging} is being tested; this page updates by itself.")
