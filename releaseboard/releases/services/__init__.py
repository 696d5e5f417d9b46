"""Use cases. Each is one transaction: validate, write rows and one audit event, and
enqueue a job on commit. Views, the API and commands call these and nothing below them.
A module per area; everything is reachable as `services.<name>`."""

from __future__ import annotations

from releaseboard.refusals import Refused
from releaseboard.releases.services.branches import (
    may_update_branch,
    request_branch,
    update_branch,
)
from releaseboard.releases.services.core import (
    _active_job,
    _existing,
    _locked,
    _once,
    _replayed,
)
from releaseboard.releases.services.cycle import (
    copy_master_to_staging,
    promote_to_master,
    staging_test_job,
    test_staging,
)
from releaseboard.releases.services.jobs import (
    RETRYABLE_KINDS,
    cancel_job,
    is_retryable,
    retry_job,
)
from releaseboard.releases.services.promotions import (
    ACTIONABLE_STATES,
    _test_promotion_job,
    is_actionable,
    promote,
    promote_job,
    request_promotion,
    retest_promotion,
)
from releaseboard.releases.services.repositories import (
    _sync_job,
    refresh,
    save_repository,
    validate_repository,
)

__all__ = [
    "ACTIONABLE_STATES",
    "Refused",
    "is_actionable",
    "is_retryable",
    "RETRYABLE_KINDS",
    "_active_job",
    "_existing",
    "_locked",
    "_once",
    "_replayed",
    "_sync_job",
    "_test_promotion_job",
    "cancel_job",
    "copy_master_to_staging",
    "may_update_branch",
    "promote",
    "promote_job",
    "promote_to_master",
    "refresh",
    "request_branch",
    "request_promotion",
    "retest_promotion",
    "retry_job",
    "save_repository",
    "staging_test_job",
    "test_staging",
    "update_branch",
    "validate_repository",
]
