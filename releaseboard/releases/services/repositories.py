"""Registering and refreshing repositories."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from releaseboard import branching, vcs
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs import service as jobs
from releaseboard.jobs.models import Job
from releaseboard.refusals import Refused
from releaseboard.releases.models import (
    Repository,
)
from releaseboard.releases.services.core import _once, _replayed
from releaseboard.roles import Perm, require
from releaseboard.sandbox import split_command

# -- repositories ------------------------------------------------------------------------


def validate_repository(repository: Repository) -> None:
    """Refuse a repository whose URL or branch names Releaseboard will not use."""
    try:
        vcs.check_remote_url(repository.remote_url, allow_local=settings.ALLOW_LOCAL_REPOSITORIES)
    except vcs.InvalidRemoteURL as exc:
        raise Refused(str(exc), field="remote_url") from None
    for field in ("master_branch", "staging_branch"):
        if not branching.check_branch_name(getattr(repository, field)):
            raise Refused("git does not accept this as a branch name.", field=field)
    for field in ("feature_prefix", "hotfix_prefix"):
        value = getattr(repository, field)
        if not value.endswith("/") or not branching.check_branch_name(value + "x"):
            raise Refused("A prefix is a valid branch name part ending in '/', e.g. 'feature/'.", field=field)
    try:
        split_command(repository.test_command)
        split_command(repository.build_command)
    except ValueError as exc:
        raise Refused(f"The command cannot be read: {exc}.", field="test_command") from None


def save_repository(repository: Repository, *, actor: Any, changes: dict[str, Any] | None = None) -> Job:
    """Register or change a repository, then check its remote and import its heads.

    `changes` ({field: {"from": old, "to": new}}, see audit.changes) goes into the audit
    event, so turning on the four-eyes rule is on record as exactly that."""
    require(actor, Perm.CONFIGURE)
    validate_repository(repository)
    with transaction.atomic():
        created = repository.pk is None
        repository.save()
        audit_record(
            "repository.registered" if created else "repository.changed",
            actor=actor,
            repository=repository,
            obj=repository,
            details={"remote_url": repository.remote_url, "changes": changes or {}},
        )
        return _sync_job(repository, actor)


def _sync_job(repository: Repository, actor: Any, idempotency_key: str | None = None) -> Job:
    return jobs.create_job(
        "sync",
        title=f"Refresh {repository.name}",
        params={"repository": repository.pk},
        created_by=actor,
        subject=repository,
        scope=repository,
        idempotency_key=idempotency_key,
    )


def refresh(repository: Repository, *, actor: Any, idempotency_key: str | None = None) -> Job:
    """Fetch the remote now and update the board (the "Refresh" button)."""
    require(actor, Perm.REFRESH)
    if (replayed := _replayed(idempotency_key)) is not None:
        return replayed

    def create() -> Job:
        audit_record("repository.refresh_requested", actor=actor, repository=repository, obj=repository)
        return _sync_job(repository, actor, idempotency_key)

    return _once(idempotency_key, create)
