from __future__ import annotations

from django.urls import URLPattern, path

from releaseboard.tokens import views

app_name = "tokens"
urlpatterns: list[URLPattern] = [
    path("settings/tokens/", views.token_list, name="token_list"),
    path("settings/tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
]
