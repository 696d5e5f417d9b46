"""Which commits reached production with a deployment, and when their work started.

A commit's lead time runs from the first commit of the branch it came with (a feature or
hotfix promoted through Releaseboard; its merge commit carries `Releaseboard-Promotion: N`)
to the first production deployment that contained it. A commit that came with no
promoted branch starts at its own time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from releaseboard import vcs
from releaseboard.deployments.models import Deployment, DeploymentCommit, DeploymentState, Tier
from releaseboard.releases.models import Promotion

COMMIT_LIMIT = 5000
TRAILER = "Releaseboard-Promotion"


@dataclass(frozen=True)
class Change:
    sha: str
    subject: str
    authored_at: int
    branch_name: str
    started_at: int


def group_changes(
    commits: Iterable[vcs.CommitInfo], branches: dict[str, tuple[str, list[vcs.CommitInfo]]]
) -> list[Change]:
    """Pure: each commit with the start of its branch. `branches` maps a promotion merge
    commit's SHA to (branch name, the branch's commits)."""
    by_sha: dict[str, tuple[str, int]] = {}
    for merge_sha, (name, branch_commits) in branches.items():
        start = min((c.authored_at for c in branch_commits), default=None)
        for c in branch_commits:
            by_sha[c.sha] = (name, start if start is not None else c.authored_at)
        if start is not None:
            by_sha.setdefault(merge_sha, (name, start))
    changes = []
    for c in commits:
        name, start = by_sha.get(c.sha, ("", c.authored_at))
        changes.append(Change(c.sha, c.subject[:255], c.authored_at, name, min(start, c.authored_at)))
    return changes


def changes_in(mirror: vcs.Mirror, deployment: Deployment) -> list[Change]:
    """The commits this production deployment brings that no production deployment of the
    repository brought before (read with git from the worker's mirror)."""
    earlier = (
        Deployment.objects.filter(
            repository=deployment.repository, tier=Tier.PRODUCTION, state=DeploymentState.SUCCEEDED
        )
        .exclude(pk=deployment.pk)
        .order_by("-finished_at")
        .values_list("sha", flat=True)[:20]
    )
    base = next((s for s in earlier if mirror.has_commit(s) and mirror.is_ancestor(s, deployment.sha)), None)
    commits = mirror.commits_between(base, deployment.sha, limit=COMMIT_LIMIT)
    seen = set(
        DeploymentCommit.objects.filter(repository=deployment.repository, sha__in=[c.sha for c in commits]).values_list(
            "sha", flat=True
        )
    )
    commits = [c for c in commits if c.sha not in seen]
    branches: dict[str, tuple[str, list[vcs.CommitInfo]]] = {}
    ids = {c.sha: int(v) for c in commits for v in c.trailers.get(TRAILER, [])[:1] if v.isdigit()}
    promotions = Promotion.objects.filter(repository=deployment.repository, pk__in=ids.values()).select_related(
        "branch"
    )
    by_id = {p.pk: p for p in promotions}
    for merge_sha, pk in ids.items():
        p = by_id.get(pk)
        if p is None or not p.staging_sha or not p.branch_sha or not mirror.has_commit(p.branch_sha):
            continue
        branches[merge_sha] = (p.branch.name, mirror.commits_between(p.staging_sha, p.branch_sha, limit=COMMIT_LIMIT))
    return group_changes(commits, branches)


def record(deployment: Deployment, changes: list[Change], deployed_at: datetime) -> int:
    """Write the rows behind the lead time (inside the caller's transaction)."""
    rows = [
        DeploymentCommit(
            deployment=deployment,
            repository_id=deployment.repository_id,
            sha=c.sha,
            subject=c.subject,
            branch_name=c.branch_name,
            authored_at=datetime.fromtimestamp(c.authored_at, UTC),
            started_at=datetime.fromtimestamp(c.started_at, UTC),
            deployed_at=deployed_at,
            lead_seconds=max(0, int(deployed_at.timestamp()) - c.started_at),
        )
        for c in changes
    ]
    DeploymentCommit.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    return len(rows)
