"""Requesting a feature or hotfix branch, and updating one from staging."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from releaseboard import branching
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs import service as jobs
from releaseboard.jobs.models import Job
from releaseboard.refusals import Refused
from releaseboard.releases.models import (
    Branch,
    BranchState,
    Repository,
)
from releaseboard.releases.services.core import _once, _replayed
from releaseboard.roles import Perm, perms_of, require

# -- branches ----------------------------------------------------------------------------


def request_branch(
    repository: Repository,
    *,
    actor: Any,
    kind: str,
    name: str,
    purpose: str,
    ticket_url: str = "",
    idempotency_key: str | None = None,
) -> Branch:
    """Ask for feature/<name> or hotfix/<name>, created by a job at the staging head."""
    require(actor, Perm.REQUEST_BRANCH)
    if (replayed := _replayed(idempotency_key, Branch)) is not None:
        return replayed
    try:
        branch_kind = branching.BranchKind(kind)
    except ValueError:
        raise Refused("Choose feature or hotfix.", field="kind") from None
    if not branching.can_create_from(branch_kind, branching.BranchKind.STAGING):
        raise Refused("Only feature and hotfix branches can be requested.", field="kind")
    try:
        full = branching.full_name(repository.names, branch_kind, name.strip())
    except branching.InvalidBranchName as exc:
        raise Refused(str(exc), field="name") from None
    if not branching.check_branch_name(full):
        raise Refused(f"git does not accept '{full}' as a branch name.", field="name")
    ticket_url = ticket_url.strip()
    if ticket_url and not ticket_url.lower().startswith(("https://", "http://")):
        raise Refused("A ticket link starts with https:// or http://.", field="ticket_url")
    if not purpose.strip():
        raise Refused("Say in a line what the branch is for.", field="purpose")

    def create() -> Branch:
        if Branch.objects.filter(repository=repository, name=full).exclude(state=BranchState.FAILED).exists():
            raise Refused(f"{full} already exists in {repository.name}; pick another name.", field="name")
        Branch.objects.filter(repository=repository, name=full, state=BranchState.FAILED).delete()
        branch = Branch.objects.create(
            repository=repository,
            name=full,
            kind=branch_kind.value,
            state=BranchState.REQUESTED,
            purpose=purpose.strip(),
            ticket_url=ticket_url.strip(),
            requested_by=actor,
        )
        audit_record(
            "branch.requested",
            actor=actor,
            repository=repository,
            obj=branch,
            details={"purpose": branch.purpose[:500], "ticket_url": branch.ticket_url},
        )
        jobs.create_job(
            "create_branch",
            title=f"Create {full}",
            params={"branch": branch.pk},
            created_by=actor,
            subject=branch,
            scope=repository,
            lock_key=repository.lock_key,
            idempotency_key=idempotency_key,
        )
        return branch

    result = _once(idempotency_key, create)
    return result if isinstance(result, Branch) else Branch.objects.get(pk=result.subject_id)


def may_update_branch(actor: Any, branch: Branch, perms: set[Perm] | None = None) -> bool:
    """Whether `actor` may merge staging into `branch`: whoever requested it (while they
    may still request branches), or a release manager. `perms` (the actor's, read once)
    spares a page of many branches a query per branch."""
    perms = perms_of(actor) if perms is None else perms
    if Perm.PROMOTE in perms:
        return True
    owner = branch.requested_by_id is not None and branch.requested_by_id == getattr(actor, "pk", None)
    return owner and Perm.REQUEST_BRANCH in perms


def update_branch(branch: Branch, *, actor: Any, idempotency_key: str | None = None) -> Job:
    """ "Update from staging": a job merges the current staging into the branch and pushes
    the merge with compare-and-swap; on conflicts it reports the files and changes nothing."""
    if not may_update_branch(actor, branch):
        raise PermissionDenied("Only the branch's owner or a release manager may update it from staging.")
    if (replayed := _replayed(idempotency_key)) is not None:
        return replayed
    repository = branch.repository
    if branch.kind not in (branching.BranchKind.FEATURE.value, branching.BranchKind.HOTFIX.value):
        raise Refused(f"Only feature and hotfix branches are updated from {repository.staging_branch}.")
    if branch.state != BranchState.ACTIVE:
        raise Refused(f"{branch.name} is {branch.get_state_display().lower()}; only active branches can be updated.")

    def create() -> Job:
        audit_record(
            "branch.update_requested", actor=actor, repository=repository, obj=branch, from_sha=branch.head_sha
        )
        return jobs.create_job(
            "update_branch",
            title=f"Update {branch.name} from {repository.staging_branch}",
            params={"branch": branch.pk},
            created_by=actor,
            subject=branch,
            scope=repository,
            lock_key=repository.lock_key,
            idempotency_key=idempotency_key,
        )

    return _once(idempotency_key, create)
