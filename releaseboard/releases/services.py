"""Use cases. Each is one transaction: validate, write rows and one audit event, and
enqueue a job on commit. Views call these and nothing below them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from releaseboard import branching, vcs
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
    Release,
    ReleaseState,
    Repository,
)
from releaseboard.roles import Perm, has_perm, require
from releaseboard.sandbox import split_command


def _existing(idempotency_key: str | None) -> Job | None:
    if not idempotency_key:
        return None
    return Job.objects.filter(idempotency_key=idempotency_key).first()


def _replayed(idempotency_key: str | None, model: Any = None) -> Any:
    """What the first request with this key made, if there was one: a repeated click is
    answered with it even when the state has moved on since (no "already promoted")."""
    job = _existing(idempotency_key)
    if job is None or model is None:
        return job
    return model.objects.get(pk=job.subject_id)


def _locked(model: Any, pk: int) -> Any:
    """Take the row's write lock for the rest of the transaction and read it fresh.

    Two people pressing the same button at the same moment both pass the checks made
    before the transaction; the second waits here for the first to commit, then sees
    what the first did (PostgreSQL: FOR UPDATE; SQLite: the IMMEDIATE transaction
    already holds the database's write lock).
    """
    return model.objects.select_for_update().get(pk=pk)


def _active_job(kind: str, subject: Any, states: Any = None) -> Job | None:
    """The newest job of `kind` about `subject` that has not ended (or is in `states`)."""
    return (
        jobs.active_jobs(kind=kind, subject_type=type(subject).__name__.lower(), subject_id=subject.pk)
        .filter(state__in=states or JobState.active())
        .order_by("-pk")
        .first()
    )


def _once(idempotency_key: str | None, create: Any) -> Any:
    """Run `create` at most once per idempotency key (double clicks, browser retries).

    Returns what the first call made, looked up through the job it created.
    """
    job = _existing(idempotency_key)
    if job is not None:
        return job
    try:
        with transaction.atomic():
            return create()
    except IntegrityError:
        job = _existing(idempotency_key)
        if job is None:
            raise
        return job


# -- repositories ------------------------------------------------------------------------


def validate_repository(repository: Repository) -> None:
    """Refuse a repository whose URL or branch names Releaseboard will not use."""
    try:
        vcs.check_remote_url(repository.remote_url, allow_local=settings.ALLOW_LOCAL_REPOSITORIES)
    except vcs.InvalidRemoteURL as exc:
        raise Refused(str(exc), field="remote_url") from None
    for field in ("master_branch", "staging_branch"):
        if not vcs.check_branch_name(getattr(repository, field)):
            raise Refused("git does not accept this as a branch name.", field=field)
    for field in ("feature_prefix", "hotfix_prefix"):
        value = getattr(repository, field)
        if not value.endswith("/") or not vcs.check_branch_name(value + "x"):
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
    if not vcs.check_branch_name(full):
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


def may_update_branch(actor: Any, branch: Branch) -> bool:
    """Whether `actor` may merge staging into `branch`: whoever requested it (while they
    may still request branches), or a release manager."""
    if has_perm(actor, Perm.PROMOTE):
        return True
    owner = branch.requested_by_id is not None and branch.requested_by_id == getattr(actor, "pk", None)
    return owner and has_perm(actor, Perm.REQUEST_BRANCH)


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


# -- promotions --------------------------------------------------------------------------


def request_promotion(
    branch: Branch, *, actor: Any, title: str, description: str = "", idempotency_key: str | None = None
) -> Promotion:
    """Open a promotion of a feature/hotfix branch into staging and test the merge result."""
    require(actor, Perm.REQUEST_PROMOTION)
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
    if promotion.state not in (PromotionState.OPEN, PromotionState.FAILED):
        raise Refused(f"Promotion #{promotion.pk} is {promotion.get_state_display().lower()}; nothing to test.")

    def create() -> Job:
        locked = _locked(Promotion, promotion.pk)
        # A test that has not started yet will merge and test the newest heads anyway:
        # a second click (or a second person) is answered with it.
        if (queued := _active_job("test_promotion", locked, [JobState.QUEUED])) is not None:
            return queued
        if locked.state not in (PromotionState.OPEN, PromotionState.FAILED):
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
    if promotion.state not in (PromotionState.OPEN, PromotionState.FAILED):
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
        moved = Promotion.objects.filter(
            pk=promotion.pk, state__in=(PromotionState.OPEN, PromotionState.FAILED)
        ).update(state=PromotionState.PROMOTING, state_message="", promoted_by=actor, retests=0)
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
RETRYABLE_KINDS = {"sync", "test_staging", "test_promotion", "promote", "create_branch"}


def retry_job(job: Job, *, actor: Any, idempotency_key: str | None = None) -> Job:
    """ "Retry" a failed or cancelled job where that is safe (release managers)."""
    require(actor, Perm.RETRY_JOB)
    if (replayed := _replayed(idempotency_key)) is not None:
        return replayed
    if job.state not in (JobState.FAILED, JobState.CANCELLED):
        raise Refused(f"Job #{job.pk} is {job.get_state_display().lower()}; only failed or cancelled jobs are retried.")
    if job.kind not in RETRYABLE_KINDS:
        raise Refused(
            "A release or a copy of master to staging is not retried as it was: open its page again, "
            "review what it would do now, and confirm there."
        )
    if job.scope_id is None:
        raise Refused(f"Job #{job.pk} does not name its repository; start it again from the repository's page.")
    repository = Repository.objects.get(pk=job.scope_id)
    if job.kind == "sync":
        return refresh(repository, actor=actor, idempotency_key=idempotency_key)
    if job.kind == "test_staging":
        return test_staging(repository, actor=actor, idempotency_key=idempotency_key)
    if job.subject_id is None:
        raise Refused(f"Job #{job.pk} does not name its {job.subject_type or 'subject'}; start it again from its page.")
    if job.kind == "test_promotion":
        return retest_promotion(Promotion.objects.get(pk=job.subject_id), actor=actor, idempotency_key=idempotency_key)
    if job.kind == "promote":
        return promote(Promotion.objects.get(pk=job.subject_id), actor=actor, idempotency_key=idempotency_key)
    branch = Branch.objects.get(pk=job.subject_id)
    if branch.state != BranchState.FAILED:
        raise Refused(f"{branch.name} is {branch.get_state_display().lower()}; there is nothing to create again.")

    def create() -> Job:
        # Conditional, like promote(): of two retries at once only the first moves it.
        if not Branch.objects.filter(pk=branch.pk, state=BranchState.FAILED).update(state=BranchState.REQUESTED):
            if (first := _active_job("create_branch", branch)) is not None:
                return first
            raise Refused(f"{branch.name} is no longer failed; there is nothing to create again.")
        audit_record("branch.retry_requested", actor=actor, repository=repository, obj=branch)
        return jobs.create_job(
            "create_branch",
            title=f"Create {branch.name}",
            params={"branch": branch.pk},
            created_by=actor,
            subject=branch,
            scope=repository,
            lock_key=repository.lock_key,
            idempotency_key=idempotency_key,
        )

    return _once(idempotency_key, create)


def cancel_job(job: Job, *, actor: Any) -> Job:
    """Cancel a queued job, or ask a running one to stop (release managers)."""
    require(actor, Perm.CANCEL_JOB)
    if job.is_final:
        raise Refused(f"Job #{job.pk} has already ended ({job.get_state_display().lower()}).")
    return jobs.cancel(job, actor=actor)
