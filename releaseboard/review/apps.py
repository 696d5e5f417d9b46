from __future__ import annotations

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "releaseboard.review"
    label = "review"
    verbose_name = "promotion review"

    def ready(self) -> None:
        # The test job tells its check points; it does not import review.
        from releaseboard.releases import hooks
        from releaseboard.review.reports import record_test_report
        from releaseboard.review.service import record_review

        hooks.merge_checked.register(record_review)
        hooks.tests_ran.register(record_test_report)
