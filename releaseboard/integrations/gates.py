"""CI statuses as gates of the release flow, registered at releases' check points."""

from __future__ import annotations

import datetime as dt
from typing import Any

from releaseboard.integrations import statuses
from releaseboard.integrations.models import GateTarget
from releaseboard.releases.hooks import Stop, Verdict, Wait

# How often a waiting promote job looks again (the job holds no worker meanwhile).
RETRY_SECONDS = 10.0


def _verdict(gate: statuses.Gate) -> Verdict:
    if gate.passed:
        return None
    if gate.failed:
        return Stop(gate.explain() + " Fix it in CI (or run it again), then promote again.")
    return Wait(gate.explain(), RETRY_SECONDS)


def promotion_gates(promotion: Any, since: dt.datetime | None = None) -> Verdict:
    """The branch head's and the merge commit's required contexts."""
    gated = statuses.gated_targets(promotion.repository)
    for target, sha in (
        (GateTarget.BRANCH_HEAD, promotion.branch_sha),
        (GateTarget.MERGE_COMMIT, promotion.merge_sha),
    ):
        if sha and target in gated:
            verdict = _verdict(statuses.evaluate(promotion.repository, target, sha, since=since))
            if verdict is not None:
                return verdict
    return None


def release_gates(repository: Any, sha: str) -> Verdict:
    """The staging head's required contexts: a release waits for nobody, it is refused
    until they are green (press Promote to master again then)."""
    if not statuses.has_gates(repository, GateTarget.STAGING_HEAD):
        return None
    gate = statuses.evaluate(repository, GateTarget.STAGING_HEAD, sha)
    if gate.passed:
        return None
    return Stop(gate.explain() + " Releases wait until they are green.")


def wants_candidates(repository: Any) -> bool:
    return statuses.has_gates(repository, GateTarget.MERGE_COMMIT)


def register() -> None:
    from releaseboard.releases import hooks

    hooks.before_promote.register(promotion_gates)
    hooks.before_release.register(release_gates)
    hooks.candidates_wanted.register(wants_candidates)
