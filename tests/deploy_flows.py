"""Steps the deployment tests take: real releases through the real services and jobs,
and environments whose deploy command writes a VERSION file (the demo's command)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from releaseboard.deployments import demo
from releaseboard.deployments.models import Environment, Source, Tier
from releaseboard.releases import services
from releaseboard.releases.models import Release, Repository
from tests.conftest import run_jobs
from tests.flows import passed_promotion


def release(
    repository: Repository, remote: Any, developer: Any, rm: Any, name: str, version: str, kind: str = "feature"
) -> Release:
    """Promote one branch to staging and release it as `version`."""
    promotion = passed_promotion(repository, remote, developer, name, kind=kind)
    services.promote(promotion, actor=rm)
    run_jobs()
    release = services.promote_to_master(repository, actor=rm, version=version, notes="")
    run_jobs()
    release.refresh_from_db()
    assert release.state == "released", release.state_message
    repository.refresh_from_db()
    return release


def environments(repository: Repository, root: Path) -> tuple[Environment, Environment]:
    common = {"repository": repository, "deploy_command": demo.deploy_command(root), "timeout": 30}
    staging = Environment.objects.create(
        name="staging", tier=Tier.STAGING, source=Source.RELEASES, position=1, **common
    )
    production = Environment.objects.create(
        name="production",
        tier=Tier.PRODUCTION,
        source=Source.RELEASES,
        position=2,
        check_command=demo.check_command(root),
        **common,
    )
    return staging, production


def deployed(root: Path, environment: Environment) -> list[str]:
    path = root / environment.name / "VERSION"
    return path.read_text().splitlines() if path.exists() else []
