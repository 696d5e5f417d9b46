from __future__ import annotations

from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "releaseboard.deployments"
    label = "deployments"

    def ready(self) -> None:
        # Register the deploy runner, and ask to hear when promotions and releases land
        # (auto-deploy), without releases knowing this app exists.
        from releaseboard.deployments import runners

        runners.register_all()
