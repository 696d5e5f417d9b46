from __future__ import annotations

from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releaseboard.releases"
    label = "releases"

    def ready(self) -> None:
        # Register one runner per job kind with the generic jobs app.
        from releaseboard.releases import runners

        runners.register_all()
