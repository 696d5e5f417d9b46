from __future__ import annotations

from django.apps import AppConfig


class PolicyConfig(AppConfig):
    name = "releaseboard.policy"
    label = "policy"
    verbose_name = "Release policy: drift alarms, locks, freeze windows"
