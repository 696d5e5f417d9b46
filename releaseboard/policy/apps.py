from __future__ import annotations

from django.apps import AppConfig


class PolicyConfig(AppConfig):
    name = "releaseboard.policy"
    label = "policy"
    verbose_name = "Release policy: drift alarms, locks, freeze windows"

    def ready(self) -> None:
        # The release flow asks its check points; it does not import policy.
        from releaseboard.policy import hooks

        hooks.register()
