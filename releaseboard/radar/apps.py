from __future__ import annotations

from django.apps import AppConfig


class RadarConfig(AppConfig):
    name = "releaseboard.radar"
    label = "radar"
    verbose_name = "conflict radar"

    def ready(self) -> None:
        # Recomputed whenever a job recorded new heads; the release flow does not import radar.
        from releaseboard.radar.compute import radar_ahead, refresh_radar_or_log
        from releaseboard.releases import hooks

        hooks.heads_recorded.register(refresh_radar_or_log)
        hooks.staging_moving.register(radar_ahead)
