from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from releaseboard.audit.changes import form_changes
from releaseboard.releases import services
from releaseboard.releases.models import Repository


class RepositoryForm(forms.ModelForm):
    class Meta:
        model = Repository
        fields = [
            "name",
            "remote_url",
            "master_branch",
            "staging_branch",
            "feature_prefix",
            "hotfix_prefix",
            "build_command",
            "test_command",
            "test_timeout",
            "four_eyes",
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        # ModelForm.clean() returns cleaned_data; the stubs allow None for overrides that return nothing.
        data = self.cleaned_data
        candidate = Repository(**{k: v for k, v in data.items() if k in self.Meta.fields})
        try:
            services.validate_repository(candidate)
        except services.Refused as exc:
            self.add_error(exc.field, exc.message)
        return data


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    form = RepositoryForm
    list_display = ("name", "remote_url", "master_branch", "staging_branch", "four_eyes", "synced_at")

    def save_model(self, request: HttpRequest, obj: Repository, form: Any, change: bool) -> None:
        # Through the service: the change, its audit event and the sync job in one transaction.
        job = services.save_repository(obj, actor=request.user, changes=form_changes(form, created=not change))
        messages.info(request, f"Checking the remote and importing its branches (job #{job.pk}).")

    def has_delete_permission(self, request: HttpRequest, obj: Repository | None = None) -> bool:
        return False
