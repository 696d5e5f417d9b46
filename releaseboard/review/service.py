"""Record a promotion's review from inside its test job (called by releases.runners)."""

from __future__ import annotations

from django.utils import timezone

from releaseboard import vcs
from releaseboard.jobs.execution import JobContext
from releaseboard.releases.models import Promotion
from releaseboard.review.compute import read_review
from releaseboard.review.models import PromotionReview


def record_review(
    ctx: JobContext,
    mirror: vcs.Mirror,
    promotion: Promotion,
    staging: str,
    branch_sha: str,
    *,
    merge_sha: str = "",
    merge: vcs.MergeResult | None = None,
) -> None:
    """Store what the promotion brings, as of this merge check. A failure to read it is
    logged and does not fail the test: the review helps people, the test gates."""
    # Reads only, without the job's observer: a whole diff in the job log would bury the
    # test output, and the page shows it better.
    quiet = vcs.Mirror(mirror.path, mirror.url, allow_local=mirror.allow_local)
    conflicted = merge is not None and not merge.clean
    try:
        review = read_review(
            quiet,
            staging,
            branch_sha,
            merge_sha=merge_sha,
            conflict_tree=merge.tree if conflicted and merge is not None else "",
            conflict_paths=merge.conflicted_paths if conflicted and merge is not None else None,
        )
    except (vcs.GitError, ValueError) as exc:
        ctx.log(f"Could not read the changes for the promotion page: {exc}\n")
        return
    fields = ["staging_sha", "branch_sha", "merge_sha", "data", "created_at"]
    row = PromotionReview(
        promotion_id=promotion.pk,
        staging_sha=staging,
        branch_sha=branch_sha,
        merge_sha=merge_sha,
        data=review.as_data(),
        created_at=timezone.now(),
    )
    with ctx.atomic():
        # One statement, insert or replace (INSERT ... ON CONFLICT DO UPDATE on both databases).
        PromotionReview.objects.bulk_create(
            [row], update_conflicts=True, unique_fields=["promotion"], update_fields=fields
        )
    added = sum(f["added"] for f in review.files)
    deleted = sum(f["deleted"] for f in review.files)
    ctx.log(
        f"The promotion brings {len(review.commits)} commit(s) and changes {len(review.files)} file(s) "
        f"(+{added} -{deleted}).\n"
    )
