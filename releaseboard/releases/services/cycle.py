"""Staging and master: testing staging, a release (promote to master), and copying master
to staging to start a new cycle."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from releaseboard import branching
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs import service as jobs
from releaseboard.jobs.models import Job
from releaseboard.refusals import Refused
from releaseboard.releases import hooks, selectors
from releaseboard.releases.models import (
    BranchState,
    Release,
    ReleaseState,
    Repository,
)
from releaseboard.releases.services.core import _active_job, _locked, _once, _replayed
from releaseboard.roles import Perm, require

# -- staging and master -------------------------------------------------------------------


def test_staging(repository: Repository, *, actor: Any, idempotency_key: str | None = None) -> Job:
    """ "Test staging": run build and tests on the current staging head."""
    require(actor, Perm.RUN_TESTS)
    if (replayed := _replayed(idempotency_key)) is not None:
        return replayed

    def create() -> Job:
        audit_record("staging.test_requested", actor=actor, repository=repository, obj=repository)
        return staging_test_job(repository, actor, idempotency_key)

    return _once(idempotency_key, create)


def staging_test_job(repository: Repository, actor: Any, idempotency_key: str | None = None) -> Job:
    return jobs.create_job(
        "test_staging",
        title=f"Test {repository.staging_branch}",
        params={"repository": repository.pk},
        created_by=actor,
        subject=repository,
        scope=repository,
        idempotency_key=idempotency_key,
    )


def promote_to_master(
    repository: Repository, *, actor: Any, version: str, notes: str, idempotency_key: str | None = None
) -> Release:
    """ "Promote to master": fast-forward master to the tested staging head and tag it,
    in one atomic push."""
    require(actor, Perm.PROMOTE)
    if (replayed := _replayed(idempotency_key, Release)) is not None:
        return replayed
    preview = selectors.release_preview(repository)
    try:
        chosen = branching.Version.parse(version)
    except ValueError as exc:
        raise Refused(str(exc), field="version") from None
    if chosen <= branching.Version.parse(repository.latest_version):
        raise Refused(f"Version {chosen} is not above the latest release {repository.latest_version}.", field="version")
    if preview.refusal:
        raise Refused(preview.refusal)
    # A drift alarm, the lock, a freeze window or a red CI status (policy and integrations).
    if isinstance(verdict := hooks.before_release.ask(repository, preview.staging_sha), hooks.Stop):
        raise Refused(verdict.message)

    def create() -> Release:
        _locked(Repository, repository.pk)  # one release at a time, even for two clicks at once
        pending = Release.objects.filter(repository=repository, state=ReleaseState.PENDING).first()
        if pending is not None and pending.tag == chosen.tag and pending.sha == preview.staging_sha:
            return pending  # the same decision, made twice at the same moment: one release
        if pending is not None:
            raise Refused(f"{pending.tag} is being released right now; wait for it to finish, then look again.")
        if Release.objects.filter(repository=repository, tag=chosen.tag).exclude(state=ReleaseState.FAILED).exists():
            raise Refused(f"{chosen.tag} is already taken; tags never move. Choose another version.", field="version")
        release = Release.objects.create(
            repository=repository,
            version=str(chosen),
            tag=chosen.tag,
            sha=preview.staging_sha,
            previous_master_sha=preview.master_sha,
            notes=notes.strip(),
            released_by=actor,
            tag_timestamp=int(timezone.now().timestamp()),
        )
        audit_record(
            "release.requested",
            actor=actor,
            repository=repository,
            obj=release,
            from_sha=preview.master_sha,
            to_sha=preview.staging_sha,
            details={"version": str(chosen)},
        )
        jobs.create_job(
            "release",
            title=f"Release {chosen.tag}",
            params={"release": release.pk},
            created_by=actor,
            subject=release,
            scope=repository,
            lock_key=repository.lock_key,
            idempotency_key=idempotency_key,
        )
        return release

    result = _once(idempotency_key, create)
    return result if isinstance(result, Release) else Release.objects.get(pk=result.subject_id)


def copy_master_to_staging(repository: Repository, *, actor: Any, idempotency_key: str | None = None) -> Job:
    """ "Copy master to staging": start a new cycle. Unreleased promotions on staging are
    discarded (the confirmation page lists them first)."""
    require(actor, Perm.COPY_MASTER)
    if (replayed := _replayed(idempotency_key)) is not None:
        return replayed
    if not repository.branches.filter(name=repository.master_branch, state=BranchState.ACTIVE).exists():
        raise Refused(f"{repository.master_branch} was not found on the remote; refresh the repository first.")

    def create() -> Job:
        locked = _locked(Repository, repository.pk)
        # Two clicks at the same moment: the second waits for the first, then gets its job.
        if (first := _active_job("copy_master", locked)) is not None:
            return first
        audit_record(
            "staging.copy_requested",
            actor=actor,
            repository=repository,
            obj=repository,
            details={"discarded": [p.pk for p in selectors.unreleased_promotions(repository)]},
        )
        return jobs.create_job(
            "copy_master",
            title=f"Copy {repository.master_branch} to {repository.staging_branch}",
            params={"repository": repository.pk},
            created_by=actor,
            subject=repository,
            scope=repository,
            lock_key=repository.lock_key,
            idempotency_key=idempotency_key,
        )

    return _once(idempotency_key, create)


# Kinds whose job may simply run again: each re-reads the remote and re-checks every
# rule before it writes. A release or a copy of master to staging is a decision made on
# a confirmation page, so it is asked for again there instead.
