"""Generic jobs: the DB row is the source of truth; Celery only carries its id."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def active(cls) -> tuple[JobState, ...]:
        return (cls.QUEUED, cls.RUNNING)

    @classmethod
    def final(cls) -> tuple[JobState, ...]:
        return (cls.SUCCEEDED, cls.FAILED, cls.CANCELLED)


class JobReason(models.TextChoices):
    """Why a job is in its state; kept apart from the state itself."""

    NONE = "", "—"
    OK = "ok", "Done"
    NOTHING_TO_DO = "nothing_to_do", "Nothing to do"
    TESTS_FAILED = "tests_failed", "Tests failed"
    BUILD_FAILED = "build_failed", "Build failed"
    TIMED_OUT = "timed_out", "Timed out"
    MERGE_CONFLICT = "merge_conflict", "Merge conflict"
    NOTHING_TO_PROMOTE = "nothing_to_promote", "Nothing to promote"
    TARGET_MOVED = "target_moved", "Target branch moved"
    REFUSED = "refused", "Refused by the branch rules"
    BRANCH_EXISTS = "branch_exists", "Branch already exists"
    GIT_ERROR = "git_error", "Git error"
    DEPLOY_FAILED = "deploy_failed", "Deploy command failed"
    CHECK_FAILED = "check_failed", "Check after deploy failed"
    CANCELLED = "cancelled", "Cancelled by a user"
    STALE = "stale", "Worker stopped answering"
    TOO_MANY_ATTEMPTS = "too_many_attempts", "Too many attempts"
    ERROR = "error", "Internal error"


class Job(models.Model):
    kind = models.CharField(max_length=32, db_index=True)
    queue = models.CharField(max_length=16, default="git")
    params = models.JSONField(default=dict, blank=True)
    # What the job is about, for people and links ("promotion", 12).
    subject_type = models.CharField(max_length=32, blank=True)
    subject_id = models.BigIntegerField(null=True, blank=True)
    title = models.CharField(max_length=255)
    # Jobs with the same lock_key never write at the same time (one writer per repository).
    lock_key = models.CharField(max_length=64, blank=True, db_index=True)
    # Shown and filtered by repository without jobs knowing what a repository is.
    scope_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    scope_name = models.CharField(max_length=100, blank=True)

    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED, db_index=True)
    reason = models.CharField(max_length=32, choices=JobReason.choices, default=JobReason.NONE, blank=True)
    message = models.TextField(blank=True)

    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    idempotency_key = models.CharField(max_length=64, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    published_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log_lines = models.PositiveIntegerField(default=0)
    # Times the job went back to the queue to wait for something outside (JobWaiting).
    waits = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"job #{self.pk} {self.title}"

    @property
    def is_active(self) -> bool:
        return self.state in JobState.active()

    @property
    def is_final(self) -> bool:
        return self.state in JobState.final()


class JobStep(models.Model):
    """One command a job ran (git or a test command), recorded before and after."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="steps")
    seq = models.PositiveIntegerField()
    name = models.CharField(max_length=255)
    command = models.TextField(blank=True)
    # Set when the step starts, not when its row is written (steps are written in bulk).
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["seq"]
        unique_together = [("job", "seq")]

    def __str__(self) -> str:
        return f"job #{self.job_id} #{self.seq}"


class JobLogLine(models.Model):
    """A chunk of a job's log. `seq` is the cursor the live log polls by."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log")
    seq = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        unique_together = [("job", "seq")]

    def __str__(self) -> str:
        return f"job #{self.job_id} #{self.seq}"


class Lease(models.Model):
    """A named lease held by one job at a time (e.g. "repository:3": one writer per
    repository across all workers and machines). It expires unless renewed."""

    key = models.CharField(max_length=64, unique=True)
    holder_job_id = models.BigIntegerField(null=True, blank=True)
    holder_token = models.CharField(max_length=32, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key} (held by job #{self.holder_job_id})" if self.holder_token else f"{self.key} (free)"
