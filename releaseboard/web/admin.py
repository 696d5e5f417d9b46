"""Users and roles in the Django admin, each change written to the audit log.

Django's own admin keeps a LogEntry with a vague message; Releaseboard's audit log is
the record Ops verify and export, so every add, change and delete of a user or a role
(a Django group) is an event there, in the same transaction, naming each changed field
with its old and new value and who changed it. Passwords are never written, only that
one was set or changed.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from releaseboard.audit.changes import form_changes
from releaseboard.audit.service import record as audit_record


class AuditedAdmin(admin.ModelAdmin):
    """Writes `<noun>.created`, `<noun>.changed` and `<noun>.deleted` audit events."""

    audit_noun = ""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # After the many-to-many fields (a user's roles) are saved; the admin's change
        # view runs all of it in one transaction, so the event commits with the change.
        super().save_related(request, form, formsets, change)
        changes = form_changes(form, created=not change)
        if change and not changes:
            return
        audit_record(
            f"{self.audit_noun}.{'changed' if change else 'created'}",
            actor=request.user,
            obj=form.instance,
            details={"changes": changes},
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            audit_record(f"{self.audit_noun}.deleted", actor=request.user, obj=obj, details={"name": str(obj)})
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():  # the "delete selected" action: one event per row, all or none
            for obj in queryset:
                audit_record(f"{self.audit_noun}.deleted", actor=request.user, obj=obj, details={"name": str(obj)})
            super().delete_queryset(request, queryset)


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    audit_noun = "user"

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:  # the form was saved
                audit_record(
                    "user.changed",
                    actor=request.user,
                    obj=self.get_object(request, unquote(id)),
                    details={"changes": {"password": "password changed"}},
                )
        return response


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    audit_noun = "role"
