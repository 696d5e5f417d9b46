from __future__ import annotations

from django.contrib import admin

from releaseboard.integrations.models import RequiredContext


@admin.register(RequiredContext)
class RequiredContextAdmin(admin.ModelAdmin):
    list_display = ("repository", "context", "applies_to", "timeout_minutes")
    list_filter = ("repository", "applies_to")
    filter_horizontal = ("reporters",)
