"""Rows for page tests and page benchmarks, written straight to the database (no git):
repositories, branches in every state, promotions, releases, jobs with steps and log
lines, audit events, and CI statuses (required and reported ones). `grow()` adds the
same mix again, so a test can compare one page at two sizes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from releaseboard.audit.service import record
from releaseboard.integrations.models import CommitStatus, GateTarget, RequiredContext
from releaseboard.jobs.models import Job, JobLogLine, JobState, JobStep
from releaseboard.releases.models import (
    Branch,
    BranchState,
    MergeCheck,
    Promotion,
    PromotionState,
    Release,
    ReleaseState,
    Repository,
)

_counter = itertools.count(1)


def _sha(n: int) -> str:
    return f"{n:040x}"


@dataclass(frozen=True)
class Mix:
    """How much one `grow()` call adds to one repository."""

    open_branches: int = 5
    closed_branches: int = 5  # promoted and gone ones the board does not show
    releases: int = 5
    jobs: int = 5
    log_lines: int = 20
    audit_events: int = 10
    statuses: int = 2  # reports per context on each open promotion's branch head and on staging


def repository(name: str) -> Repository:
    return Repository.objects.create(
        name=name, remote_url=f"https://git.example.com/{name}.git", test_command="true", test_timeout=60
    )


def grow(repo: Repository, user: User, mix: Mix = Mix()) -> None:
    """Add `mix` to `repo`, as Releaseboard itself would have left it."""
    now = timezone.now()
    with transaction.atomic():
        for i in range(mix.open_branches):
            n = next(_counter)
            kind = "hotfix" if i % 4 == 3 else "feature"
            branch = Branch.objects.create(
                repository=repo,
                name=f"{kind}/open-{n}",
                kind=kind,
                state=BranchState.ACTIVE,
                head_sha=_sha(n),
                base_sha=_sha(1),
                requested_by=user,
                behind=i,
                ahead=1,
            )
            if i % 2 == 0:
                _statuses(repo, branch.head_sha, mix.statuses)
                Promotion.objects.create(
                    repository=repo,
                    branch=branch,
                    title=f"Promote {branch.name}",
                    state=PromotionState.OPEN,
                    requested_by=user,
                    merge_check=MergeCheck.CLEAN,
                    branch_sha=branch.head_sha,
                    staging_sha=_sha(1),
                )
        for i in range(mix.closed_branches):
            n = next(_counter)
            branch = Branch.objects.create(
                repository=repo,
                name=f"feature/closed-{n}",
                kind="feature",
                state=BranchState.PROMOTED if i % 2 else BranchState.GONE,
                head_sha=_sha(n),
                requested_by=user,
            )
            Promotion.objects.create(
                repository=repo,
                branch=branch,
                title=f"Promote {branch.name}",
                state=PromotionState.RELEASED,
                requested_by=user,
                promoted_by=user,
                promoted_at=now,
                promoted_sha=_sha(n + 1),
            )
        for _ in range(mix.releases):
            n = next(_counter)
            Release.objects.create(
                repository=repo,
                version=f"1.{n}.0",
                tag=f"v1.{n}.0",
                sha=_sha(n),
                notes=f"Features\n- change {n}\n",
                state=ReleaseState.RELEASED,
                released_by=user,
            )
        for _ in range(mix.jobs):
            n = next(_counter)
            job = Job.objects.create(
                kind="promotion.test",
                title=f"Test promotion {n}",
                state=JobState.SUCCEEDED,
                scope_id=repo.pk,
                scope_name=repo.name,
                created_by=user,
                started_at=now,
                finished_at=now,
                log_lines=mix.log_lines,
            )
            JobStep.objects.bulk_create(
                JobStep(job=job, seq=s, name=f"step {s}", command="git fetch", exit_code=0, outcome="ok")
                for s in range(1, 4)
            )
            JobLogLine.objects.bulk_create(
                JobLogLine(job=job, seq=s, text=f"line {s} of job {n}") for s in range(1, mix.log_lines + 1)
            )
        # Far from the counter's SHAs, so no feature branch shares a head with them.
        for name, n in ((repo.master_branch, 2**100 + 2), (repo.staging_branch, 2**100 + 3)):
            Branch.objects.get_or_create(
                repository=repo, name=name, defaults={"kind": name, "state": BranchState.ACTIVE, "head_sha": _sha(n)}
            )
        _statuses(repo, _sha(2**100 + 3), mix.statuses)
        for i in range(mix.audit_events):
            record("branch.requested", actor=user, repository=repo, message=f"event {i}")


# -- bulk: the benchmark's full size in seconds (bulk_create, no per-row audit events) ------


@dataclass(frozen=True)
class Size:
    """Totals over all repositories; the open branches are all on the first one, so its
    board and radar show that many (the others hold the promoted and gone ones)."""

    open_branches: int = 100
    closed_branches: int = 900
    promotions: int = 1000
    releases: int = 1000
    jobs: int = 10000
    log_lines: int = 20


def bulk_grow(repos: list[Repository], user: User, size: Size) -> None:
    """Add `size` across `repos` with bulk_create. Called again, it adds as much again.
    The first repository also gets staging/master rows and a full radar cache (every pair
    of its open branches merged, a few in conflict), as a sync would leave them."""
    from releaseboard.radar.models import PairMerge, pair_key

    now = timezone.now()
    first = repos[0]
    with transaction.atomic():
        for repo in repos:
            for name, kind in ((repo.master_branch, "master"), (repo.staging_branch, "staging")):
                Branch.objects.get_or_create(
                    repository=repo,
                    name=name,
                    defaults={"kind": kind, "state": BranchState.ACTIVE, "head_sha": _sha(1)},
                )
        Branch.objects.filter(repository=first, name=first.staging_branch).update(head_sha=_sha(2))
        opened = Branch.objects.bulk_create(
            Branch(
                repository=first,
                name=f"feature/open-{n}",
                kind="feature",
                state=BranchState.ACTIVE,
                head_sha=_sha(n),
                base_sha=_sha(1),
                requested_by=user,
                behind=n % 7,
                ahead=1 + n % 3,
            )
            for n in (next(_counter) for _ in range(size.open_branches))
        )
        closed = Branch.objects.bulk_create(
            Branch(
                repository=repos[i % len(repos)],
                name=f"feature/closed-{n}",
                kind="feature",
                state=BranchState.PROMOTED if i % 2 else BranchState.GONE,
                head_sha=_sha(n),
                requested_by=user,
            )
            for i, n in enumerate(next(_counter) for _ in range(size.closed_branches))
        )
        open_promotions = [
            Promotion(
                repository=first,
                branch=b,
                title=f"Promote {b.name}",
                state=PromotionState.OPEN,
                requested_by=user,
                merge_check=MergeCheck.CLEAN,
                branch_sha=b.head_sha,
                staging_sha=_sha(2),
            )
            for b in opened[::2]
        ]
        done = [
            Promotion(
                repository=b.repository,
                branch=b,
                title=f"Promote {b.name}",
                state=PromotionState.RELEASED,
                requested_by=user,
                promoted_by=user,
                promoted_at=now,
                promoted_sha=_sha(next(_counter)),
            )
            for b in (closed[i % len(closed)] for i in range(max(0, size.promotions - len(open_promotions))))
        ]
        Promotion.objects.bulk_create(open_promotions + done)
        Release.objects.bulk_create(
            Release(
                repository=repos[i % len(repos)],
                version=f"1.{n}.0",
                tag=f"v1.{n}.0",
                sha=_sha(n),
                notes=f"Features\n- change {n}\n",
                state=ReleaseState.RELEASED,
                released_by=user,
                released_at=now,
            )
            for i, n in enumerate(next(_counter) for _ in range(size.releases))
        )
        for start in range(0, size.jobs, 2000):
            jobs = Job.objects.bulk_create(
                Job(
                    kind="test_promotion",
                    title=f"Test promotion {i}",
                    state=JobState.FAILED if i % 50 == 0 else JobState.SUCCEEDED,
                    reason="tests_failed" if i % 50 == 0 else "ok",
                    scope_id=repos[i % len(repos)].pk,
                    scope_name=repos[i % len(repos)].name,
                    created_by=user,
                    started_at=now,
                    finished_at=now,
                    log_lines=size.log_lines,
                )
                for i in range(start, min(size.jobs, start + 2000))
            )
            JobStep.objects.bulk_create(
                JobStep(job=j, seq=s, name=f"step {s}", command="git fetch", exit_code=0, outcome="ok")
                for j in jobs
                for s in range(1, 4)
            )
            JobLogLine.objects.bulk_create(
                (
                    JobLogLine(job=j, seq=s, text=f"line {s} of job {j.pk}")
                    for j in jobs
                    for s in range(1, size.log_lines + 1)
                ),
                batch_size=5000,
            )
        heads = [b.head_sha for b in Branch.objects.filter(repository=first, state=BranchState.ACTIVE)]
        have = set(PairMerge.objects.filter(repository=first).values_list("low_sha", "high_sha"))
        pairs = {pair_key(a, b) for i, a in enumerate(heads) for b in heads[i + 1 :] if a != b} - have
        PairMerge.objects.bulk_create(
            (
                PairMerge(
                    repository=first,
                    low_sha=low,
                    high_sha=high,
                    conflicts=[{"path": "src/app.py", "kind": "content"}] if n % 40 == 0 else [],
                )
                for n, (low, high) in enumerate(sorted(pairs))
            ),
            batch_size=2000,
        )


def _statuses(repo: Repository, sha: str, reports: int) -> None:
    """A required context and a reported-only one on `sha`, each reported `reports` times
    (pending, then the latest state), as CI leaves them."""
    if not reports:
        return
    for target in (GateTarget.BRANCH_HEAD, GateTarget.STAGING_HEAD):
        RequiredContext.objects.get_or_create(repository=repo, context="ci/build", applies_to=target)
    CommitStatus.objects.bulk_create(
        CommitStatus(
            repository=repo,
            sha=sha,
            context=context,
            state="pending" if r < reports - 1 else "success",
            target_url=f"https://ci.example.com/{context}/{r}",
        )
        for context in ("ci/build", "lint")
        for r in range(reports)
    )
