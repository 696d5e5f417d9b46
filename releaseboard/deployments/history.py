"""A made-up delivery history (releases, deployments, commits, an incident, a rollback, a
failed deploy), written as rows marked `demo_history` so the Metrics page has something to
show on a demo's first run. Lead-time rows go through leadtime.group_changes and
leadtime.record, as a real production deployment's do; metrics read them like any other.
No job ran for these rows and their SHAs name no real commit: pages say "demo history".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from releaseboard import vcs
from releaseboard.deployments import leadtime
from releaseboard.deployments.models import Deployment, DeploymentKind, DeploymentState, Environment, Incident

HOUR = 3600.0


@dataclass
class Built:
    releases: int = 0
    deployments: int = 0
    commits: int = 0
    incidents: int = 0
    rollbacks: int = 0


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def build(
    staging: Environment,
    production: Environment,
    *,
    days: int,
    now: datetime,
    actor: Any = None,
    seed: int = 12,
    per_week: float = 2.5,
) -> Built:
    """Write about `per_week` releases a week over the last `days` days, each deployed to
    staging and then production; one incident ended by a rollback halfway, one failed
    deploy a little later."""
    rng = random.Random(seed)
    built = Built()
    repository = production.repository
    start = now - timedelta(days=days)
    t = start + timedelta(hours=rng.uniform(2, 30))
    last_prod: Deployment | None = None
    last_stage: Deployment | None = None
    incident_at, failure_at = start + (now - start) * 0.5, start + (now - start) * 0.7
    incident_done = failure_done = False

    def deployment(
        env: Environment, version: str, sha: str, at: datetime, previous: Deployment | None, **kw: Any
    ) -> Deployment:
        built.deployments += 1
        return Deployment.objects.create(
            environment=env,
            repository=repository,
            tier=env.tier,
            version=version,
            sha=sha,
            requested_by=actor,
            created_at=at - timedelta(minutes=4),
            started_at=at - timedelta(minutes=3),
            finished_at=at,
            previous=previous if kw.get("state", DeploymentState.SUCCEEDED) == DeploymentState.SUCCEEDED else None,
            state=kw.pop("state", DeploymentState.SUCCEEDED),
            demo_history=True,
            **kw,
        )

    while t < now - timedelta(hours=30):
        built.releases += 1
        version = f"0.0.{built.releases}"
        hotfix = built.releases > 1 and rng.random() < 0.2
        sha = _sha(rng)
        commits: list[vcs.CommitInfo] = []
        branches: dict[str, tuple[str, list[vcs.CommitInfo]]] = {}
        for b in range(1 if hotfix else rng.randint(1, 3)):
            began = t - timedelta(hours=rng.uniform(2, 120))
            span = (t - began).total_seconds()
            branch_commits = [
                vcs.CommitInfo(
                    _sha(rng),
                    f"Work {b + 1}.{c + 1} for {version}",
                    "Dev One",
                    "dev1@example.com",
                    int(began.timestamp() + span * rng.random() * 0.8),
                    {},
                )
                for c in range(rng.randint(1, 4))
            ]
            merge = vcs.CommitInfo(
                _sha(rng), f"Promote branch {b + 1} of {version}", "Releaseboard", "", int(t.timestamp()), {}
            )
            branches[merge.sha] = (f"{'hotfix' if hotfix else 'feature'}/demo-{built.releases}-{b + 1}", branch_commits)
            commits += [merge, *branch_commits]
        stage_at = t + timedelta(minutes=rng.uniform(10, 40))
        last_stage = deployment(staging, version, sha, stage_at, last_stage, hotfix=hotfix)
        prod_at = stage_at + timedelta(hours=rng.uniform(1, 26))
        if not failure_done and prod_at > failure_at:
            failure_done = True
            deployment(
                production,
                version,
                sha,
                prod_at,
                None,
                hotfix=hotfix,
                state=DeploymentState.FAILED,
                state_message=f"The deploy command failed: exit code 3. production stays on "
                f"{last_prod.label if last_prod else 'nothing'}; the log shows the command's output.",
            )
            prod_at += timedelta(minutes=45)
        current = deployment(production, version, sha, prod_at, last_prod, hotfix=hotfix)
        built.commits += leadtime.record(current, leadtime.group_changes(commits, branches), prod_at)
        if not incident_done and prod_at > incident_at and last_prod is not None:
            incident_done = True
            began = prod_at + timedelta(minutes=35)
            back_at = began + timedelta(minutes=rng.uniform(50, 150))
            reason = f"Checkout errors after {current.label}"
            back = deployment(
                production,
                last_prod.version,
                last_prod.sha,
                back_at,
                current,
                kind=DeploymentKind.ROLLBACK,
                reason=reason,
                release=last_prod.release,
            )
            Incident.objects.create(
                repository=repository,
                cause=current,
                started_at=began,
                description=reason + " (demo history)",
                opened_by=actor,
                resolved_at=back_at,
                resolved_by_deployment=back,
            )
            built.incidents += 1
            built.rollbacks += 1
            current = back
        last_prod = current
        t += timedelta(days=rng.expovariate(per_week / 7))
    for env, last in ((staging, last_stage), (production, last_prod)):
        if last is not None and env.current_id is None:
            Environment.objects.filter(pk=env.pk).update(current=last)
    return built
