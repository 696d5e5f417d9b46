from __future__ import annotations

from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "releaseboard.review"
    label = "review"
    verbose_name = "promotion review"
