"""Which commits' CI statuses a page shows: a promotion's branch head and merge commit,
the staging head. Each page asks for all of its commits at once (two queries)."""

from __future__ import annotations

from typing import Any

from releaseboard.integrations import statuses
from releaseboard.integrations.models import GateTarget
from releaseboard.releases.models import Promotion


def _promotion_pairs(promotion: Promotion) -> list[tuple[str, str]]:
    return [(GateTarget.BRANCH_HEAD, promotion.branch_sha), (GateTarget.MERGE_COMMIT, promotion.merge_sha)]


def promotion_checks(promotion: Promotion) -> list[statuses.CommitChecks]:
    """The branch head's and the merge commit's contexts; a commit with none (no status
    reported, none required) is left out."""
    found = statuses.for_page(promotion.repository, _promotion_pairs(promotion))
    return [found[pair] for pair in _promotion_pairs(promotion) if pair in found and found[pair].lines]


def board_checks(repository: Any, promotions: list[Promotion], staging_sha: str) -> dict[Any, Any]:
    """Every card's contexts, keyed by promotion id, and the staging head's under
    "staging", from one call whatever the number of cards."""
    pairs = [pair for promotion in promotions for pair in _promotion_pairs(promotion)]
    found = statuses.for_page(repository, [*pairs, (GateTarget.STAGING_HEAD, staging_sha)])
    by_card: dict[Any, Any] = {
        promotion.pk: [found[pair] for pair in _promotion_pairs(promotion) if pair in found and found[pair].lines]
        for promotion in promotions
    }
    staging = found.get((GateTarget.STAGING_HEAD, staging_sha))
    by_card["staging"] = [staging] if staging is not None and staging.lines else []
    return by_card


def staging_checks(repository: Any, sha: str) -> statuses.CommitChecks | None:
    """The staging head's contexts, which a release needs green."""
    return statuses.for_page(repository, [(GateTarget.STAGING_HEAD, sha)]).get((GateTarget.STAGING_HEAD, sha))
