from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from releaseboard.deployments import services
from releaseboard.deployments.models import Environment


class EnvironmentForm(forms.ModelForm):
    class Meta:
        model = Environment
        fields = [
            "repository",
            "name",
            "tier",
            "source",
            "deploy_command",
            "check_command",
            "timeout",
            "protected",
            "auto_deploy",
            "position",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        candidate = Environment(**{k: v for k, v in data.items() if k in self.Meta.fields})
        try:
            services.validate_environment(candidate)
        except services.Refused as exc:
            self.add_error(exc.field, exc.message)
        return data


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    form = EnvironmentForm
    list_display = ("repository", "name", "tier", "source", "protected", "auto_deploy")
    list_filter = ("tier",)

    def save_model(self, request: HttpRequest, obj: Environment, form: Any, change: bool) -> None:
        # Through the service: the change and its audit event in one transaction.
        services.save_environment(obj, actor=request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Environment | None = None) -> bool:
        return False  # deployments and metrics refer to it; lock it instead
