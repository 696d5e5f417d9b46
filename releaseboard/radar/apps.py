from __future__ import annotations

from django.apps import AppConfig


class RadarConfig(AppConfig):
    name = "releaseboard.radar"
    label = "radar"
    verbose_name = "conflict radar"
