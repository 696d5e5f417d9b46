"""What an edit form changed, as audit details: each field with its old and new value."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.db import models

# Never written to the log as values: an event says that they changed, not what to.
SECRET_FIELD_PREFIXES = ("password",)


def plain(value: Any) -> Any:
    """A value as JSON can hold it: rows by name, sets of rows as sorted names."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, models.QuerySet | Iterable) and not isinstance(value, bytes | dict):
        return sorted(str(plain(v)) for v in value)
    return str(value)


def form_changes(form: forms.BaseForm, *, created: bool = False) -> dict[str, Any]:
    """{field: {"from": old, "to": new}} for every field the form changed; a password
    field becomes "password": "password set" (or "password changed"), never a hash."""
    changes: dict[str, Any] = {}
    for name in form.changed_data:
        if name.startswith(SECRET_FIELD_PREFIXES):
            changes["password"] = "password set" if created else "password changed"
            continue
        old = None if created else plain(form.initial.get(name, form.fields[name].initial))
        new = plain(form.cleaned_data.get(name))
        if old != new:
            changes[name] = {"from": old, "to": new}
    return changes
