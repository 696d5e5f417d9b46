"""The conflict radar's cache: one row per merged pair of commits."""

from __future__ import annotations

from django.db import models

from releaseboard.releases.models import Repository


class PairMerge(models.Model):
    """The in-memory merge of two commits, keyed by their SHAs (the smaller one first).

    Keyed by commits, not branch names: when one branch moves, only the pairs with its
    new head are missing from the cache, and only those are merged again.
    """

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+")
    low_sha = models.CharField(max_length=40)
    high_sha = models.CharField(max_length=40)
    # [{"path": ..., "kind": "content" | "modify/delete" | "add/add" | ...}]; empty when clean.
    conflicts = models.JSONField(default=list, blank=True)
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["repository", "low_sha", "high_sha"], name="unique_pair_merge"),
        ]

    def __str__(self) -> str:
        return f"{self.low_sha[:10]} × {self.high_sha[:10]}"

    # Not named clean: that is Model.clean(), which full_clean() calls; a property there made
    # full_clean() fail with "'bool' object is not callable".
    @property
    def merges_cleanly(self) -> bool:
        return not self.conflicts


class RadarCoverage(models.Model):
    """Which heads the repository's cached pairs were last brought up to date for: a refresh
    that finds the same heads (and the number of pairs they make) reads no pairs at all."""

    repository = models.OneToOneField(Repository, on_delete=models.CASCADE, primary_key=True, related_name="+")
    # Those heads, sorted, space-separated: a refresh after a few of them changed reads only
    # the pairs with a changed head. Empty on a row from before they were kept.
    heads = models.TextField(default="", blank=True)

    def __str__(self) -> str:
        return f"radar of repository {self.repository_id} at {len(self.heads.split())} heads"


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The cache key of a pair: the merge's conflicts do not depend on the order."""
    return (a, b) if a <= b else (b, a)
