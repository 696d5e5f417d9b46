"""Steps several test modules take to reach a state: real services, jobs run in-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from releaseboard.releases import services
from releaseboard.releases.models import Branch, Promotion, Repository
from tests.conftest import run_jobs


def sync(repository: Repository, actor: Any) -> None:
    """Refresh from the remote and run the jobs that follows."""
    services.refresh(repository, actor=actor)
    run_jobs()
    repository.refresh_from_db()


def requested_promotion(
    repository: Repository,
    remote: Any,
    developer: Any,
    name: str,
    kind: str = "feature",
    run: Callable[[], object] = run_jobs,
) -> Promotion:
    """A branch with one commit, requested for promotion; its test job is queued, not run.
    `run` runs the jobs each step before it queues (a test may watch what they do)."""
    branch = services.request_branch(repository, actor=developer, kind=kind, name=name, purpose="work")
    run()
    remote.commit_on(branch.name, {f"{name}.py": "X = 1\n"}, f"Work on {name}")
    services.refresh(repository, actor=developer)
    run()
    return services.request_promotion(Branch.objects.get(pk=branch.pk), actor=developer, title=name)


def passed_promotion(
    repository: Repository, remote: Any, developer: Any, name: str, kind: str = "feature"
) -> Promotion:
    """A branch with one commit, requested for promotion, its merge tested (and passed)."""
    promotion = requested_promotion(repository, remote, developer, name, kind)
    run_jobs()
    promotion.refresh_from_db()
    return promotion


def landed_promotion(repository: Repository, remote: Any, developer: Any, release_manager: Any, name: str) -> Promotion:
    """passed_promotion, then promoted to staging by a release manager (and landed)."""
    promotion = passed_promotion(repository, remote, developer, name)
    services.promote(promotion, actor=release_manager)
    run_jobs()
    promotion.refresh_from_db()
    assert promotion.state == "promoted", promotion.state_message
    return promotion
