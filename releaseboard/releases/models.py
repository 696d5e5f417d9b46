"""Repositories, their branches, promotions, test runs and releases."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from releaseboard.branching import BranchKind as Kind
from releaseboard.branching import BranchNames


class Repository(models.Model):
    name = models.SlugField(max_length=100, unique=True, help_text="Short name used in URLs, e.g. 'shop'.")
    remote_url = models.CharField(
        max_length=500, help_text="git URL of the remote: https://…, ssh://…, user@host:path, or a local path."
    )
    master_branch = models.CharField(max_length=100, default="master")
    staging_branch = models.CharField(max_length=100, default="staging")
    feature_prefix = models.CharField(max_length=50, default="feature/")
    hotfix_prefix = models.CharField(max_length=50, default="hotfix/")
    build_command = models.CharField(max_length=500, blank=True, help_text="Optional, run before the tests.")
    test_command = models.CharField(max_length=500, help_text="e.g. python -m pytest -q")
    test_timeout = models.PositiveIntegerField(
        default=900, validators=[MinValueValidator(5), MaxValueValidator(3 * 3600)], help_text="Seconds."
    )
    four_eyes = models.BooleanField(
        "four-eyes rule",
        default=False,
        help_text="Whoever requested a promotion may not promote it to staging themselves; a second person must.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    sync_error = models.TextField(blank=True)
    latest_version = models.CharField(max_length=32, default="0.0.0")
    # Recorded by every sync, so pages can show them without running git in the web
    # process: the commits staging has over master, and whether master is in staging.
    staging_ahead = models.JSONField(default=list, blank=True)
    master_in_staging = models.BooleanField(null=True, blank=True)
    # The master and staging heads the two fields above were computed for: a job that
    # sees the same heads reuses them instead of asking git again.
    summary_key = models.CharField(max_length=64, blank=True, default="")
    # A digest of what the branch facts were last computed from (staging, the open heads,
    # the landed hotfixes): a job that finds the same skips the computation and its git.
    facts_key = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "repositories"

    def __str__(self) -> str:
        return self.name

    @property
    def names(self) -> BranchNames:
        return BranchNames(self.master_branch, self.staging_branch, self.feature_prefix, self.hotfix_prefix)

    @property
    def lock_key(self) -> str:
        return f"repository:{self.pk}"


class BranchState(models.TextChoices):
    REQUESTED = "requested", "Being created"
    ACTIVE = "active", "Active"
    PROMOTED = "promoted", "Promoted"
    FAILED = "failed", "Could not be created"
    GONE = "gone", "Deleted on the remote"


class Branch(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="branches")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=[(k.value, k.value) for k in Kind])
    state = models.CharField(max_length=16, choices=BranchState.choices, default=BranchState.ACTIVE)
    head_sha = models.CharField(max_length=40, blank=True)
    base_sha = models.CharField(max_length=40, blank=True, help_text="The staging commit it was created from.")
    purpose = models.TextField(blank=True)
    ticket_url = models.URLField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Recorded by every sync (releases.intelligence), so pages show them without git:
    # commits behind and ahead of staging (None: not computed, e.g. no staging), the
    # hotfixes on staging this branch lacks ([{"name", "promotion"}]) and the open
    # branches whose unmerged commits it carries ([{"name", "branch", "commits"}]).
    behind = models.PositiveIntegerField(null=True, blank=True)
    ahead = models.PositiveIntegerField(null=True, blank=True)
    missing_hotfixes = models.JSONField(default=list, blank=True)
    depends_on = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="unique_branch_per_repository")]

    def __str__(self) -> str:
        return self.name

    @property
    def kind_enum(self) -> Kind:
        return Kind(self.kind)

    @property
    def short_name(self) -> str:
        if self.kind in (Kind.FEATURE.value, Kind.HOTFIX.value):
            return self.name.removeprefix(self.repository.names.prefix(Kind(self.kind)))
        return self.name


class PromotionState(models.TextChoices):
    OPEN = "open", "Open"
    PROMOTING = "promoting", "Promoting"
    PROMOTED = "promoted", "Promoted"
    FAILED = "failed", "Promotion failed"
    RELEASED = "released", "Released"
    DISCARDED = "discarded", "Discarded"
    CLOSED = "closed", "Closed"
    # Its merge commit was on staging, then staging moved without it and not by
    # Releaseboard (a forced push): it will not be released; the branch can be promoted again.
    REMOVED = "removed", "Removed from staging outside Releaseboard"

    @classmethod
    def active(cls) -> tuple[PromotionState, ...]:
        return (cls.OPEN, cls.PROMOTING, cls.FAILED)


class MergeCheck(models.TextChoices):
    UNKNOWN = "unknown", "Not checked yet"
    CLEAN = "clean", "Merges cleanly"
    CONFLICT = "conflict", "Conflicts"
    NOTHING = "nothing", "Nothing to promote"


class Promotion(models.Model):
    """A request to promote a feature or hotfix branch into staging (pull-request-like)."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="promotions")
    branch = models.ForeignKey(Branch, on_delete=models.PROTECT, related_name="promotions")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=PromotionState.choices, default=PromotionState.OPEN)
    state_message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="requested_promotions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # The candidate: the merge of staging_sha and branch_sha into merge_sha, written at
    # merge_timestamp so any worker can rebuild the identical commit.
    merge_check = models.CharField(max_length=16, choices=MergeCheck.choices, default=MergeCheck.UNKNOWN)
    conflict_files = models.JSONField(default=list, blank=True)
    staging_sha = models.CharField(max_length=40, blank=True)
    branch_sha = models.CharField(max_length=40, blank=True)
    merge_sha = models.CharField(max_length=40, blank=True)
    merge_tree = models.CharField(max_length=40, blank=True)
    merge_timestamp = models.BigIntegerField(null=True, blank=True)
    retests = models.PositiveIntegerField(default=0)

    promoted_sha = models.CharField(max_length=40, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_at = models.DateTimeField(null=True, blank=True)
    release = models.ForeignKey("Release", null=True, blank=True, on_delete=models.SET_NULL, related_name="promotions")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.branch.name} → staging"

    @property
    def trailer(self) -> str:
        return f"Releaseboard-Promotion: {self.pk}"


class TestResult(models.TextChoices):
    __test__ = False  # not a test class for pytest, which collects names starting with "Test"

    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"


class TestRun(models.Model):
    """A test run recorded against the exact commit and tree it ran on."""

    __test__ = False  # not a pytest test class

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="test_runs")
    commit_sha = models.CharField(max_length=40, db_index=True)
    tree_sha = models.CharField(max_length=40)
    result = models.CharField(max_length=16, choices=TestResult.choices)
    summary = models.CharField(max_length=255, blank=True)
    promotion = models.ForeignKey(Promotion, null=True, blank=True, on_delete=models.SET_NULL, related_name="test_runs")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.result} on {self.commit_sha[:10]}"


class ReleaseState(models.TextChoices):
    PENDING = "pending", "Releasing"
    RELEASED = "released", "Released"
    FAILED = "failed", "Failed"


class Release(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="releases")
    version = models.CharField(max_length=32)
    tag = models.CharField(max_length=64)
    sha = models.CharField(max_length=40, help_text="The tested staging commit master moves to.")
    previous_master_sha = models.CharField(max_length=40, blank=True)
    notes = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=ReleaseState.choices, default=ReleaseState.PENDING)
    state_message = models.TextField(blank=True)
    released_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)
    tag_timestamp = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.repository.name} {self.tag}"


class MoveState(models.TextChoices):
    PENDING = "pending", "Being pushed"
    LANDED = "landed", "Landed"
    DROPPED = "dropped", "Did not land"


class ExpectedMove(models.Model):
    """A move of master or staging that a Releaseboard job is about to push, written before
    the push. The drift check accepts a move as Releaseboard's own only while it is pending
    here with the same old and new head: not because the new head was once ours before."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+")
    branch_name = models.CharField(max_length=255)
    from_sha = models.CharField(max_length=40, blank=True, help_text="Empty: the branch does not exist yet.")
    to_sha = models.CharField(max_length=40)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=16, choices=MoveState.choices, default=MoveState.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["repository", "branch_name", "state"], name="expected_move_pending")]

    def __str__(self) -> str:
        return f"{self.branch_name} {self.from_sha[:10] or '(new)'} \u2192 {self.to_sha[:10]} ({self.state})"


def _locked_branches(repository: Repository) -> models.QuerySet[Branch]:
    return Branch.objects.select_for_update().filter(repository=repository).order_by("pk")


def lock_branch_rows(repository: Repository, only: tuple[str, ...] = ()) -> list[Branch]:
    """Lock every branch row of the repository, in id order, inside the caller's transaction
    (with `only`: those fields loaded, the others deferred).

    The lock order of the jobs that write branch rows: branch rows (by id) first, the
    repository row after. Recording fetched heads, branch facts, a promotion and a release
    all take them in that order, so two jobs of one repository never wait on each other.
    """
    rows = _locked_branches(repository)
    return list(rows.only(*only) if only else rows)


def lock_branch_values(repository: Repository, fields: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """lock_branch_rows for a job that reads a few fields: (pk, *fields) per row, no model
    instances (a third of the time at 100 branches)."""
    return list(_locked_branches(repository).values_list("pk", *fields))


def lock_branch_ids(repository: Repository) -> list[int]:
    """lock_branch_rows for a job that only needs the lock order, not the rows: their ids."""
    return [branch.pk for branch in _locked_branches(repository).only("pk")]
