"""Environments of a repository, deployments to them, and incidents they caused."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Tier(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


class Source(models.TextChoices):
    STAGING_HEAD = "staging_head", "The staging head"
    RELEASES = "releases", "Released tags"


class Environment(models.Model):
    repository = models.ForeignKey("releases.Repository", on_delete=models.CASCADE, related_name="environments")
    name = models.SlugField(max_length=50, help_text="e.g. staging, production, eu-prod.")
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STAGING)
    source = models.CharField(
        "deploys", max_length=16, choices=Source.choices, default=Source.RELEASES, help_text="What may go there."
    )
    deploy_command = models.CharField(
        max_length=1000,
        help_text="Run in a checkout of the commit, in the sandbox, with RELEASEBOARD_ENVIRONMENT, "
        "RELEASEBOARD_VERSION, RELEASEBOARD_SHA and RELEASEBOARD_PREVIOUS_VERSION set. "
        "Not given to a shell; use sh -c '…' for one.",
    )
    check_command = models.CharField(
        max_length=1000, blank=True, help_text="Optional smoke test, run after the deploy command succeeded."
    )
    timeout = models.PositiveIntegerField(
        default=900, validators=[MinValueValidator(5), MaxValueValidator(3 * 3600)], help_text="Seconds per command."
    )
    protected = models.BooleanField(
        default=True,
        help_text="Only release managers and Ops may deploy. Unprotected: developers too. "
        "Production is always protected.",
    )
    auto_deploy = models.BooleanField(
        default=False,
        help_text="Deploy on its own: the staging head after each promotion, or each new release. "
        "Never while the environment is locked or pinned by a rollback.",
    )
    locked_reason = models.TextField(blank=True)
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    locked_at = models.DateTimeField(null=True, blank=True)
    # The last deployment that succeeded here: what the environment runs now.
    current = models.ForeignKey("Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    position = models.PositiveSmallIntegerField(default=0, help_text="Order on the board (left to right).")

    class Meta:
        ordering = ["repository_id", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="unique_environment_per_repository")]

    def __str__(self) -> str:
        return f"{self.repository.name}/{self.name}"

    @property
    def lock_key(self) -> str:
        return f"environment:{self.pk}"

    @property
    def is_production(self) -> bool:
        return self.tier == Tier.PRODUCTION

    @property
    def is_locked(self) -> bool:
        return bool(self.locked_at)


class DeploymentKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    REDEPLOY = "redeploy", "Redeploy"
    ROLLBACK = "rollback", "Rollback"


class DeploymentState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Deploying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def active(cls) -> tuple[DeploymentState, ...]:
        return (cls.QUEUED, cls.RUNNING)


class Deployment(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="deployments")
    # Copied from the environment, so metrics filter one table with one index.
    repository = models.ForeignKey("releases.Repository", on_delete=models.CASCADE, related_name="+")
    tier = models.CharField(max_length=16, choices=Tier.choices)
    release = models.ForeignKey(
        "releases.Release", null=True, blank=True, on_delete=models.PROTECT, related_name="deployments"
    )
    version = models.CharField(max_length=64, help_text="The release version, or staging-<sha> for a commit.")
    sha = models.CharField(max_length=40)
    kind = models.CharField(max_length=16, choices=DeploymentKind.choices, default=DeploymentKind.DEPLOY)
    state = models.CharField(max_length=16, choices=DeploymentState.choices, default=DeploymentState.QUEUED)
    state_message = models.TextField(blank=True)
    hotfix = models.BooleanField(default=False, help_text="A release whose promotions are all hotfixes.")
    reason = models.TextField(blank=True, help_text="Why (required for a rollback).")
    override_reason = models.TextField(blank=True, help_text="Why it went to production without a staging deployment.")
    # What the environment ran when this one succeeded (set then, under the environment's lease).
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Rows load_demo made up to give the Metrics page a history: no job ran for them.
    demo_history = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["repository", "tier", "state", "finished_at"], name="deployment_metrics")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.label} to {self.environment.name}"

    @property
    def label(self) -> str:
        return f"v{self.version}" if self.release_id or self.demo_history else self.version

    @property
    def is_active(self) -> bool:
        return self.state in DeploymentState.active()


class DeploymentCommit(models.Model):
    """A commit that reached production, recorded once, by the first production deployment
    that contained it: the rows behind "lead time for changes"."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="commits")
    repository = models.ForeignKey("releases.Repository", on_delete=models.CASCADE, related_name="+")
    sha = models.CharField(max_length=40)
    subject = models.CharField(max_length=255, blank=True)
    branch_name = models.CharField(max_length=255, blank=True)
    authored_at = models.DateTimeField()
    # The earliest commit of the branch it came with: where the lead time starts.
    started_at = models.DateTimeField()
    deployed_at = models.DateTimeField()
    lead_seconds = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "sha"], name="commit_reaches_production_once")]
        indexes = [models.Index(fields=["repository", "deployed_at", "lead_seconds"], name="commit_lead_time")]

    def __str__(self) -> str:
        return f"{self.sha[:10]} {self.subject}"


class Incident(models.Model):
    repository = models.ForeignKey("releases.Repository", on_delete=models.CASCADE, related_name="incidents")
    cause = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="incidents")
    started_at = models.DateTimeField()
    description = models.TextField()
    link = models.URLField(blank=True)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by_deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="resolved_incidents"
    )
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    close_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"incident #{self.pk} ({self.cause.label})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
