"""Read-only helpers that turn domain rows into what a page says. No writes, no git."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from releaseboard.branching import BranchKind
from releaseboard.jobs.models import Job, JobLogLine, JobState
from releaseboard.policy import guard
from releaseboard.radar import selectors as radar
from releaseboard.releases import selectors, services
from releaseboard.releases.models import (
    Branch,
    BranchState,
    Promotion,
    PromotionState,
    Release,
    TestResult,
    TestRun,
)
from releaseboard.review.models import PromotionReview, TestReport
from releaseboard.roles import Perm, has_perm, perms_of
from releaseboard.web import diffview, logview, phases


@dataclass
class BranchCard:
    branch: Branch
    promotion: Promotion | None
    test: TestRun | None
    status: str
    phase: phases.Phase | None = None
    may_update: bool = False  # "Update from staging" is offered (the service's own rule)
    url: str = ""  # the branch's page
    promotion_url: str = ""
    update_url: str = ""  # where "Update from staging" posts


_SAMPLE_ID = 918273645


def url_for_id(name: str, repository_name: str) -> Callable[[int], str]:
    """The URL of `name` (a route of a repository and an object's id) for any id, with one
    reverse() per page: the board's 100 cards' links cost it more than all its queries."""
    head, found, tail = reverse(name, args=[repository_name, _SAMPLE_ID]).rpartition(str(_SAMPLE_ID))
    assert found, name
    return lambda pk: f"{head}{int(pk)}{tail}"


def promotion_phase(promotion: Promotion, test: TestRun | None, passing: bool, job: Job | None) -> phases.Phase:
    """The promotion's one state; the policy is asked only when it could be promoted now."""
    refusal = guard.promotion_refusal(promotion) if passing and promotion.state in PromotionState.active() else ""
    return phases.phase(promotion, test, passing, refusal=refusal, job=job)


def branch_cards(board: selectors.Board, user: Any = None) -> list[BranchCard]:
    """One card per feature/hotfix branch, with its open promotion, latest test and
    state, and what `user` may do with it, in three extra queries for all the tests, jobs
    and the user's roles."""
    perms = perms_of(user) if user is not None else set()
    branches = [*board.features, *board.hotfixes]
    merge_shas = [p.merge_sha for p in board.promotions.values() if p.merge_sha]
    tests: dict[str, TestRun] = {}
    passing: set[str] = set()
    for run in TestRun.objects.filter(repository=board.repository, commit_sha__in=merge_shas).order_by("id"):
        tests[run.commit_sha] = run  # ordered by id: the latest run wins
        if run.result == TestResult.PASSED:
            passing.add(run.commit_sha)
    jobs = {
        job.subject_id: job
        for job in Job.objects.filter(
            subject_type="promotion", subject_id__in=[p.pk for p in board.promotions.values()]
        ).order_by("id")
    }
    name = board.repository.name
    branch_url = url_for_id("web:branch_detail", name)
    promotion_url = url_for_id("web:promotion_detail", name)
    update_url = url_for_id("web:branch_update", name)
    cards = []
    for branch in branches:
        promotion = board.promotions.get(branch.pk)
        test = tests.get(promotion.merge_sha) if promotion and promotion.merge_sha else None
        phase = None
        if promotion is not None:
            promotion.repository, promotion.branch = board.repository, branch  # read below, loaded here
            phase = promotion_phase(promotion, test, promotion.merge_sha in passing, jobs.get(promotion.pk))
            status = phase.next
        elif branch.state == BranchState.REQUESTED:
            status = "Being created by its job."
        elif branch.state == BranchState.FAILED:
            status = "Could not be created; see its job."
        else:
            status = "No promotion requested yet."
        may_update = (
            user is not None
            and branch.state == BranchState.ACTIVE
            and bool(branch.behind)
            and services.may_update_branch(user, branch, perms)
        )
        card = BranchCard(branch, promotion, test, status, phase, may_update, url=branch_url(branch.pk))
        if promotion is not None:
            card.promotion_url = promotion_url(promotion.pk)
        if may_update:
            card.update_url = update_url(branch.pk)
        cards.append(card)
    return cards


@dataclass
class RadarSummary:
    staging_conflicts: int  # open branches that conflict with staging itself
    pair_conflicts: int  # pairs of open branches that conflict with each other
    pending: int

    @property
    def clear(self) -> bool:
        return not (self.staging_conflicts or self.pair_conflicts or self.pending)


def radar_summary(matrix: radar.Matrix) -> RadarSummary:
    """The radar's headline: conflicts with staging count as much as those between branches
    (a branch that conflicts with staging cannot be promoted at all)."""
    staging = sum(1 for row in matrix.rows if row.staging is not None and row.staging.state == radar.CONFLICT)
    return RadarSummary(staging, matrix.conflicting_pairs, matrix.pending_pairs)


def promotion_request_refusal(user: Any, branch: Branch) -> str:
    """Why `user` may not request this branch's promotion, or "". The rule is the
    service's (services.request_promotion): the branch's requester or a release manager."""
    if has_perm(user, Perm.PROMOTE):
        return ""
    if not has_perm(user, Perm.REQUEST_PROMOTION):
        return "You need a role that may request promotions."
    if branch.requested_by_id is not None and branch.requested_by_id == getattr(user, "pk", None):
        return ""
    who = branch.requested_by.get_username() if branch.requested_by else "nobody through Releaseboard"
    return f"Only the developer who requested {branch.name} ({who}) or a release manager may request its promotion."


def can_request_promotion(branch: Branch) -> bool:
    """Whether the "Request promotion" button makes sense for this branch now."""
    return (
        branch.state == BranchState.ACTIVE
        and branch.kind in (BranchKind.FEATURE.value, BranchKind.HOTFIX.value)
        and not branch.promotions.filter(state__in=PromotionState.active()).exists()
    )


def recent_releases(repository_id: int, limit: int = 5) -> list[Release]:
    return list(Release.objects.filter(repository_id=repository_id).select_related("released_by")[:limit])


def subject_url(job: Job) -> str:
    """The page of what the job is about, or "" when there is none to link to."""
    if not job.scope_name or job.subject_id is None:
        return ""
    if job.subject_type == "promotion":
        return reverse("web:promotion_detail", args=[job.scope_name, job.subject_id])
    if job.subject_type == "branch":
        return reverse("web:branch_detail", args=[job.scope_name, job.subject_id])
    if job.subject_type == "release":
        return reverse("web:release_list", args=[job.scope_name])
    if job.subject_type == "repository":
        return reverse("web:board", args=[job.scope_name])
    return ""


def live_log(job: Job, after: int = 0) -> dict[str, object]:
    """The context of the live-log partial: the job, its lines after `after`, the new
    cursor, and whether to keep polling.

    The state is read before the lines: if the job was already final then, every line
    it will ever write is in the result, so stopping the poller loses nothing.
    """
    job.refresh_from_db(fields=["state", "reason", "message", "finished_at", "log_lines"])
    final = job.is_final
    lines = list(JobLogLine.objects.filter(job=job, seq__gt=after).order_by("seq").values_list("seq", "text"))
    cursor = lines[-1][0] if lines else after
    # Output whose git command was sent in an earlier poll goes into that command's fold.
    previous = (
        JobLogLine.objects.filter(job=job, seq=after).values_list("text", flat=True).first()
        if lines and after
        else None
    )
    return {
        **failure_summary(job),
        "job": job,
        "log_html": logview.render(
            (text for _, text in lines), after_git_command=bool(previous and logview.is_git_command(previous))
        ),
        "has_lines": bool(lines),
        "cursor": cursor,
        "polling": not final,
    }


def review_context(promotion: Promotion) -> dict[str, object]:
    """What the promotion brings, from the review its test job stored: commits, files
    with their diffstat and (small ones) their highlighted diff, conflicting hunks."""
    review = PromotionReview.objects.filter(promotion=promotion).first()
    if review is None:
        return {"review": None}
    data = review.data
    files = diffview.file_views(data.get("files", []))
    patches = {
        view.index: diffview.render_patch(view.path, entry["patch"])
        for view, entry in zip(files, data.get("files", []), strict=True)
        if entry["patch"] and not view.large
    }
    conflicts = [
        {
            "path": c["path"],
            "landed": c["landed"],
            "hunks": [{"line": h["line"], "rows": diffview.render_conflict(c["path"], h["text"])} for h in c["hunks"]],
        }
        for c in data.get("conflicts", [])
    ]
    return {
        "review": review,
        "review_commits": data.get("commits", []),
        "review_files": [(view, patches.get(view.index, "")) for view in files],
        "review_added": sum(f.added for f in files),
        "review_deleted": sum(f.deleted for f in files),
        "review_truncated": data.get("truncated", False),
        "review_conflicts": conflicts,
        "review_current": review.branch_sha == promotion.branch_sha,
    }


TAIL_LINES = 20


def failure_summary(job: Job) -> dict[str, object]:
    """What failed, for the top of the log: the failing tests and their assertion from the
    JUnit report when the test command wrote one, else the last lines of the output."""
    if job.is_active:  # asked on every poll of a running log; the summary comes at the end
        return {"report": None, "tail": ""}
    report = TestReport.objects.filter(job=job).first()
    if report is not None and (report.data.get("failures") or report.data.get("errors")):
        return {"report": report.data, "tail": ""}
    if job.state != JobState.FAILED:
        return {"report": report.data if report else None, "tail": ""}
    last = list(JobLogLine.objects.filter(job=job).order_by("-seq").values_list("text", flat=True)[:TAIL_LINES])
    text = logview.readable("".join(reversed(last)))
    tail = "\n".join(text.rstrip("\n").split("\n")[-TAIL_LINES:])
    return {"report": report.data if report else None, "tail": tail}
