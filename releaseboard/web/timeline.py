"""A branch's way through the release process, as one line of steps for its page:
requested -> created -> pushed -> tested -> promoted -> released. Read from the rows
the jobs wrote; no git."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from releaseboard.jobs.models import Job, JobState
from releaseboard.releases.models import Branch, Promotion, TestResult, TestRun


@dataclass
class Step:
    name: str
    done: bool
    at: datetime | None = None
    detail: str = ""
    failed: bool = False


def branch_timeline(branch: Branch) -> list[Step]:
    requester = branch.requested_by.get_username() if branch.requested_by else ""
    steps = [Step("Requested", True, branch.created_at, f"by {requester}" if requester else "found on the remote")]
    created = (
        Job.objects.filter(subject_type="branch", subject_id=branch.pk, kind="create_branch").order_by("-id").first()
    )
    if created is None:
        steps.append(Step("Created", bool(branch.base_sha or branch.head_sha), None, "outside Releaseboard"))
    else:
        steps.append(
            Step(
                "Created",
                created.state == JobState.SUCCEEDED,
                created.finished_at,
                f"from staging {branch.base_sha[:10]}" if branch.base_sha else "",
                failed=created.state in (JobState.FAILED, JobState.CANCELLED),
            )
        )
    pushed = bool(branch.head_sha and branch.base_sha and branch.head_sha != branch.base_sha)
    steps.append(Step("Pushed", pushed, branch.updated_at if pushed else None, branch.head_sha[:10] if pushed else ""))
    promotion: Promotion | None = branch.promotions.select_related("release").order_by("-id").first()
    test = TestRun.objects.filter(promotion=promotion).order_by("-id").first() if promotion is not None else None
    steps.append(
        Step(
            "Tested",
            test is not None and test.result == TestResult.PASSED,
            test.created_at if test else None,
            (test.get_result_display().lower() + (f" in promotion #{promotion.pk}" if promotion else ""))
            if test
            else "",
            failed=test is not None and test.result != TestResult.PASSED,
        )
    )
    promoted_at = promotion.promoted_at if promotion else None
    steps.append(
        Step(
            "Promoted",
            promoted_at is not None,
            promoted_at,
            f"to staging as {promotion.promoted_sha[:10]}" if promotion and promoted_at else "",
        )
    )
    release = promotion.release if promotion else None
    steps.append(
        Step(
            "Released",
            release is not None and release.released_at is not None,
            release.released_at if release else None,
            release.tag if release else "",
        )
    )
    return steps
