"""Read-only queries for pages and services. No git here: what the pages show was
recorded by the jobs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet

from releaseboard import branching
from releaseboard.jobs.models import Job, JobState
from releaseboard.releases.models import (
    Branch,
    BranchState,
    Promotion,
    PromotionState,
    Repository,
    TestResult,
    TestRun,
)


def has_passing_test(repository: Repository, sha: str) -> bool:
    """Whether `sha` passed a test run as that exact commit (invariant 1)."""
    return (
        bool(sha) and TestRun.objects.filter(repository=repository, commit_sha=sha, result=TestResult.PASSED).exists()
    )


def latest_test(repository: Repository, sha: str) -> TestRun | None:
    if not sha:
        return None
    return TestRun.objects.filter(repository=repository, commit_sha=sha).first()


def head(repository: Repository, name: str) -> str:
    branch = Branch.objects.filter(repository=repository, name=name, state=BranchState.ACTIVE).first()
    return branch.head_sha if branch else ""


def unreleased_promotions(repository: Repository) -> QuerySet[Promotion]:
    """Promotions that landed on staging and are not yet released."""
    return (
        Promotion.objects.filter(repository=repository, state=PromotionState.PROMOTED)
        .select_related("branch", "requested_by")
        .order_by("promoted_at")
    )


@dataclass
class ReleasePreview:
    master_sha: str
    staging_sha: str
    promotions: list[Promotion]
    commits: list[dict[str, Any]]
    current_version: branching.Version
    proposed_version: branching.Version
    test: TestRun | None
    refusal: str = ""
    warnings: list[str] = field(default_factory=list)


def release_preview(repository: Repository) -> ReleasePreview:
    """What "Promote to master" would release, and why it may not (refusal)."""
    master_sha = head(repository, repository.master_branch)
    staging_sha = head(repository, repository.staging_branch)
    promotions = list(unreleased_promotions(repository))
    current = branching.Version.parse(repository.latest_version)
    proposed = branching.bump_for(current, [p.branch.kind_enum for p in promotions])
    test = latest_test(repository, staging_sha)
    refusal = ""
    if not staging_sha:
        refusal = (
            f"{repository.staging_branch} does not exist. Use \u201cCopy master to staging\u201d to start a cycle."
        )
    elif not master_sha:
        refusal = f"{repository.master_branch} was not found on the remote."
    elif staging_sha == master_sha:
        refusal = f"{repository.staging_branch} has nothing that {repository.master_branch} does not have."
    elif repository.master_in_staging is False:
        refusal = (
            f"{repository.master_branch} is not an ancestor of {repository.staging_branch}: someone changed "
            f"{repository.master_branch} outside the release process. Copy master to staging, promote the "
            "branches again, then release."
        )
    elif test is None or test.result != TestResult.PASSED:
        refusal = (
            f"The {repository.staging_branch} head {staging_sha[:10]} has no passing test. "
            "Run \u201cTest staging\u201d and wait for it to pass."
        )
    return ReleasePreview(
        master_sha, staging_sha, promotions, list(repository.staging_ahead), current, proposed, test, refusal
    )


def release_note_line(promotion: Promotion) -> str:
    """One line of the release notes: title, branch, requester, ticket link."""
    title = " ".join(promotion.title.split()) or promotion.branch.name
    requester = promotion.requested_by.get_username() if promotion.requested_by else "unknown"
    line = f"- {title} (`{promotion.branch.name}`, requested by {requester}, promotion #{promotion.pk})"
    ticket = promotion.branch.ticket_url.strip()
    if ticket.lower().startswith(("https://", "http://")) and not any(c in ticket for c in " <>()\n"):
        line += f" — [ticket]({ticket})"
    return line


def release_notes(promotions: list[Promotion]) -> str:
    """The Markdown draft of a release's notes, from the promotions it releases: a
    "Features" and a "Hotfixes" section, oldest promotion first, empty sections left out."""
    sections = []
    for title, kind in (
        ("Features", branching.BranchKind.FEATURE.value),
        ("Hotfixes", branching.BranchKind.HOTFIX.value),
    ):
        lines = [release_note_line(p) for p in promotions if p.branch.kind == kind]
        if lines:
            sections.append(f"## {title}\n\n" + "\n".join(lines))
    return "\n\n".join(sections)


@dataclass
class Lane:
    title: str
    branches: list[Branch]


@dataclass
class Board:
    repository: Repository
    master: Branch | None
    staging: Branch | None
    staging_test: TestRun | None
    master_test: TestRun | None
    features: list[Branch]
    hotfixes: list[Branch]
    promotions: dict[int, Promotion]
    active_jobs: list[Job]
    unreleased: list[Promotion]


def _shown_branches(repository: Repository) -> QuerySet[Branch]:
    # Promoted and deleted branches are not on the board (master and staging are kept
    # whatever their state): loading them would make the board grow with history.
    return Branch.objects.filter(repository=repository).filter(
        ~Q(state__in=[BranchState.GONE, BranchState.PROMOTED])
        | Q(name__in=[repository.master_branch, repository.staging_branch])
    )


def board_token(repository: Repository, user: Any, now: Any) -> str:
    """A short digest of everything the board region shows, read in a few indexed
    queries without rendering: the board's poller sends it back, and an unchanged board
    is answered with an empty 204 instead of the whole region.

    It covers the rows the region is drawn from (branches, open promotions, active
    jobs, the repository's sync fields), the repository's latest audit event (every state
    change writes one: locks, freezes, drift, releases), the viewer's roles (they decide
    the buttons) and the minute (for "5 minutes ago")."""
    from releaseboard.audit.models import AuditEvent

    parts: list[object] = [
        Repository.objects.filter(pk=repository.pk)
        .values_list("synced_at", "sync_error", "latest_version", "staging_ahead", "master_in_staging")
        .first(),
        AuditEvent.objects.filter(repository_id=repository.pk).order_by("-seq").values_list("seq", flat=True).first(),
        list(
            _shown_branches(repository)
            .order_by("id")
            .values_list("id", "state", "head_sha", "behind", "ahead", "missing_hotfixes", "depends_on")
        ),
        list(
            Promotion.objects.filter(repository=repository)
            .exclude(state__in=[PromotionState.CLOSED, PromotionState.DISCARDED, PromotionState.RELEASED])
            .order_by("id")
            .values_list("id", "state", "merge_check", "merge_sha", "state_message", "promoted_sha")
        ),
        list(Job.objects.filter(scope_id=repository.pk, state__in=JobState.active()).values_list("id", "state")),
        Job.objects.filter(scope_id=repository.pk).order_by("-id").values_list("id", "state").first(),
        sorted(user.groups.values_list("name", flat=True)) if getattr(user, "is_authenticated", False) else [],
        int(now.timestamp() // 60),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


def board(repository: Repository) -> Board:
    """Everything the board shows for one repository, in a handful of queries."""
    branches = list(_shown_branches(repository).select_related("requested_by"))
    by_name = {b.name: b for b in branches}
    master = by_name.get(repository.master_branch)
    staging = by_name.get(repository.staging_branch)
    promotions: dict[int, Promotion] = {}
    for promotion in (
        Promotion.objects.filter(repository=repository)
        .exclude(state__in=[PromotionState.CLOSED, PromotionState.DISCARDED, PromotionState.RELEASED])
        .select_related("branch", "requested_by")
        .order_by("id")
    ):
        promotions[promotion.branch_id] = promotion
    tests = {
        run.commit_sha: run
        for run in TestRun.objects.filter(
            repository=repository,
            commit_sha__in=[
                sha for sha in (staging.head_sha if staging else "", master.head_sha if master else "") if sha
            ],
        ).order_by("id")
    }
    return Board(
        repository=repository,
        master=master,
        staging=staging,
        staging_test=tests.get(staging.head_sha) if staging else None,
        master_test=tests.get(master.head_sha) if master else None,
        features=[
            b for b in branches if b.kind == branching.BranchKind.FEATURE.value and b.state != BranchState.PROMOTED
        ],
        hotfixes=[
            b for b in branches if b.kind == branching.BranchKind.HOTFIX.value and b.state != BranchState.PROMOTED
        ],
        promotions=promotions,
        active_jobs=list(Job.objects.filter(scope_id=repository.pk, state__in=JobState.active()).order_by("id")),
        unreleased=list(unreleased_promotions(repository)),
    )


@dataclass
class Attention:
    stale: list[Job]
    waiting: list[Job]
    failed: list[Job]


def jobs_needing_attention(
    now: Any, *, heartbeat_grace: float, publish_grace: float, failed_days: int = 7
) -> Attention:
    """For release managers: running jobs whose worker stopped answering, queued jobs no
    worker picked up, and recent failures with their reasons."""
    from datetime import timedelta

    running = Job.objects.filter(state=JobState.RUNNING, heartbeat_at__lt=now - timedelta(seconds=heartbeat_grace))
    queued = Job.objects.filter(state=JobState.QUEUED, created_at__lt=now - timedelta(seconds=publish_grace))
    failed = Job.objects.filter(state=JobState.FAILED, finished_at__gte=now - timedelta(days=failed_days))
    return Attention(
        stale=list(running.order_by("heartbeat_at")),
        waiting=list(queued.order_by("created_at")),
        failed=list(failed.select_related("created_by").order_by("-finished_at")[:100]),
    )


def jobs_for(subject_type: str, subject_id: int) -> QuerySet[Job]:
    return Job.objects.filter(subject_type=subject_type, subject_id=subject_id).order_by("-id")
