"""Requesting a promotion, testing it again, and promoting it to staging."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from releaseboard import branching
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs import service as jobs
from releaseboard.jobs.models import Job, JobState
from releaseboard.refusals import Refused
from releaseboard.releases import hooks, selectors
from releaseboard.releases.models import (
    Branch,
    BranchState,
    Promotion,
    PromotionState,
)
from releaseboard.releases.services.core import _active_job, _locked, _once, _replayed
from releaseboard.roles import Perm, has_perm, require

# -- promotions --------------------------------------------------------------------------


# A promotion is open for testing and promoting until it lands, is closed or discarded.
ACTIONABLE_STATES = (PromotionState.OPEN, PromotionState.FAILED)


def is_actionable(promotion: Promotion) -> bool:
    """Whether the promotion may be tested again or promoted (the pages offer the buttons)."""
    return promotion.state in ACTIONABLE_STATES


def request_promotion(
    branch: Branch, *, actor: Any, title: str, description: str = "", idempotency_key: str | None = None
) -> Promotion:
    """Open a promotion of a feature/hotfix branch into staging and test the merge result.

    Who may: the developer who requested the branch, or a release manager. A developer
    cannot put someone else's unfinished work up for promotion; the owner decides when
    their branch is ready, and a release manager can act for an owner who is away.
    """
    require(actor, Perm.REQUEST_PROMOTION)
    owner = branch.requested_by_id is not None and branch.requested_by_id == getattr(actor, "pk", None)
    if not (owner or has_perm(actor, Perm.PROMOTE)):
        who = branch.requested_by.get_username() if branch.requested_by else "nobody through Releaseboard"
        raise PermissionDenied(
            f"Only the developer who requested {branch.name} ({who}) or a release manager may request its promotion."
        )
    if (replayed := _replayed(idempotency_key, Promotion)) is not None:
        return replayed
    repository = branch.repository
    if not branching.can_promote(branch.kind_enum, branching.BranchKind.STAGING):
        raise Refused(f"{branch.name} cannot be promoted to staging; only feature and hotfix branches can.")
    if branch.state != BranchState.ACTIVE:
        raise Refused(f"{branch.name} is {branch.get_state_display().lower()}; only active branches can be promoted.")
    if not title.strip():
        raise Refused("Give the promotion a title.", field="title")

    def create() -> Promotion:
        _locked(Branch, branch.pk)  # one open promotion per branch, even for two clicks at once
        open_one = Promotion.objects.filter(branch=branch, state__in=PromotionState.active()).first()
        if open_one is not None:
            raise Refused(f"{branch.name} already has an open promotion (#{open_one.pk}); use that one.")
        promotion = Promotion.objects.create(
            repository=repository,
            branch=branch,
            title=title.strip()[:200],
            description=description.strip(),
            requested_by=actor,
        )
        audit_record("promotion.requested", actor=actor, repository=repository, obj=promotion, to_sha=branch.head_sha)
        _test_promotion_job(promotion, actor, idempotency_key)
        return promotion

    result = _once(idempotency_key, create)
    return result if isinstance(result, Promotion) else Promotion.objects.get(pk=result.subject_id)


def _test_promotion_job(
    promotion: Promotion, actor: Any, idempotency_key: str | None = None, then_promote: bool = False
) -> Job:
    return jobs.create_job(
        "test_promotion",
        title=f"Test {promotion.branch.name} merged into staging",
        params={"promotion": promotion.pk, "then_promote": then_promote},
        created_by=actor,
        subject=promotion,
        scope=promotion.repository,
        idempotency_key=idempotency_key,
    )


def retest_promotion(promotion: Promotion, *, actor: Any, idempotency_key: str | None = None) -> Job:
    """Merge the branch's current head with staging again and test it."""
    require(actor, Perm.RUN_TESTS)
    if (replayed := _replayed(idempotency_key)) is not None:
        return replayed
    if promotion.state not in ACTIONABLE_STATES:
        raise Refused(f"Promotion #{promotion.pk} is {promotion.get_state_display().lower()}; nothing to test.")

    def create() -> Job:
        locked = _locked(Promotion, promotion.pk)
        # A test that has not started yet will merge and test the newest heads anyway:
        # a second click (or a second person) is answered with it.
        if (queued := _active_job("test_promotion", locked, [JobState.QUEUED])) is not None:
            return queued
        if locked.state not in ACTIONABLE_STATES:
            raise Refused(f"Promotion #{promotion.pk} is {locked.get_state_display().lower()}; nothing to test.")
        Promotion.objects.filter(pk=promotion.pk).update(state=PromotionState.OPEN, state_message="", retests=0)
        audit_record("promotion.retest_requested", actor=actor, repository=promotion.repository, obj=promotion)
        return _test_promotion_job(promotion, actor, idempotency_key)

    return _once(idempotency_key, create)


def promote(promotion: Promotion, *, actor: Any, idempotency_key: str | None = None) -> Job:
    """ "Promote to staging": push the tested merge commit to staging (compare-and-swap).

    If staging moved since the test, the job merges and tests again first. Where the
    repository has the four-eyes rule, the person who requested the promotion may not be
    the one who promotes it (a retry of the promote job is checked the same way).
    """
    require(actor, Perm.PROMOTE)
    if (replayed := _replayed(idempotency_key)) is not None:
        return replayed
    if (
        promotion.repository.four_eyes
        and promotion.requested_by_id is not None
        and promotion.requested_by_id == getattr(actor, "pk", None)
    ):
        raise Refused(
            f"Four-eyes rule: {promotion.repository.name} needs a second person to promote a change. "
            f"You requested promotion #{promotion.pk}, so another release manager must promote it."
        )
    if promotion.state not in ACTIONABLE_STATES:
        raise Refused(f"Promotion #{promotion.pk} is {promotion.get_state_display().lower()}.")
    if not selectors.has_passing_test(promotion.repository, promotion.merge_sha):
        raise Refused("The merge result has no passing test yet. Wait for the test job, or run the tests again.")
    # A drift alarm, the lock, a freeze window or a red CI status (policy and integrations).
    if isinstance(verdict := hooks.before_promote.ask(promotion, since=None), hooks.Stop):
        raise Refused(verdict.message)

    def create() -> Job:
        # Conditional on the state: of two clicks at the same moment only the first moves
        # the promotion to PROMOTING (the second's UPDATE waits for the first's commit and
        # then matches no row) and the second is answered with the first's job.
        moved = Promotion.objects.filter(pk=promotion.pk, state__in=ACTIONABLE_STATES).update(
            state=PromotionState.PROMOTING, state_message="", promoted_by=actor, retests=0
        )
        if not moved:
            current = Promotion.objects.get(pk=promotion.pk)
            if (first := _active_job("promote", current)) is not None:
                return first
            raise Refused(f"Promotion #{promotion.pk} is {current.get_state_display().lower()}.")
        audit_record(
            "promotion.promote_requested",
            actor=actor,
            repository=promotion.repository,
            obj=promotion,
            from_sha=promotion.staging_sha,
            to_sha=promotion.merge_sha,
        )
        return promote_job(promotion, actor, idempotency_key)

    return _once(idempotency_key, create)


def promote_job(promotion: Promotion, actor: Any, idempotency_key: str | None = None) -> Job:
    return jobs.create_job(
        "promote",
        title=f"Promote {promotion.branch.name} to staging",
        params={"promotion": promotion.pk},
        created_by=actor,
        subject=promotion,
        scope=promotion.repository,
        lock_key=promotion.repository.lock_key,
        idempotency_key=idempotency_key,
    )
