"""Policy at the release flow's check points (releaseboard/releases/hooks.py): drift
alarms from every fetch, and drift, locks and freeze windows before every push."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from releaseboard import vcs
from releaseboard.policy import drift, guard
from releaseboard.releases import hooks
from releaseboard.releases.models import Promotion, Repository


def _promotion(promotion: Promotion, since: Any = None) -> hooks.Verdict:
    why = guard.promotion_refusal(promotion)  # a drift alarm, the lock or a freeze window
    return hooks.Stop(why) if why else None


def _release(repository: Repository, sha: str) -> hooks.Verdict:
    why = guard.release_refusal(repository)
    return hooks.Stop(why) if why else None


def _fetched(
    repository: Repository, mirror: vcs.Mirror, heads: dict[str, str], recorded: dict[str, str]
) -> Callable[[set[str]], None]:
    # Compared with the heads recorded so far (invariant 6), so before they are updated;
    # the alarms are written inside the sync's transaction, for the branches it records.
    drifts = drift.examine(repository, mirror, heads, recorded)
    return lambda stale: drift.record(repository, [d for d in drifts if d.branch_name not in stale])


def _held(repository: Repository, branch_name: str) -> bool:
    return bool(guard.open_alarms(repository, branch_name))


def register() -> None:
    hooks.before_promote.register(_promotion)
    hooks.before_release.register(_release)
    hooks.heads_fetched.register(_fetched)
    hooks.branch_held.register(_held)
