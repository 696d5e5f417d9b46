from __future__ import annotations

from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "releaseboard.tokens"
    label = "tokens"
    verbose_name = "Personal access tokens"
