"""What a promotion brings, as its test job saw it: commits, changed files, the diff,
and for a conflict the conflicting hunks. Written by the worker, read by the pages, so
no git runs in a web request."""

from __future__ import annotations

from django.db import models

from releaseboard.releases.models import Promotion


class PromotionReview(models.Model):
    promotion = models.OneToOneField(Promotion, on_delete=models.CASCADE, related_name="review")
    staging_sha = models.CharField(max_length=40)
    branch_sha = models.CharField(max_length=40)
    merge_sha = models.CharField(max_length=40, blank=True)  # "" for a conflict
    # {"commits": [...], "files": [...], "conflicts": [...], "truncated": bool}; see review/compute.py.
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"review of promotion {self.promotion_id} at {self.branch_sha[:10]}"


class TestReport(models.Model):
    """The JUnit XML report a test command wrote to $RELEASEBOARD_JUNIT_XML, summarised:
    totals and the failing tests with their assertion (see review/junit.py)."""

    __test__ = False  # not a test class for pytest, which collects names starting with "Test"

    job = models.OneToOneField("jobs.Job", on_delete=models.CASCADE, related_name="test_report")
    # {"tests": n, "failures": n, "errors": n, "skipped": n, "failed": [{"name", "message", "detail"}]}
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"test report of job {self.job_id}"
