"""Forms of the environments pages: shape only; the deployments services decide."""

from __future__ import annotations

from typing import Any

from django import forms

from releaseboard.web.forms import StartsWorkForm


class DeployForm(StartsWorkForm):
    version = forms.ChoiceField(required=False, help_text="Empty: the newest release (or the staging head).")
    override_reason = forms.CharField(
        label="Override: why it may skip staging",
        required=False,
        max_length=1000,
        help_text="Only when it never ran on a staging-tier environment. Release managers and Ops; it is audited.",
    )
    forward = forms.BooleanField(
        label="Deploy forward past the rollback", required=False, help_text="Needed while a rollback pins it."
    )

    def __init__(self, *args: Any, versions: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [("", "newest"), *((v, f"v{v}") for v in versions)]  # type: ignore[attr-defined]


class RollbackForm(StartsWorkForm):
    version = forms.ChoiceField(label="Roll back to")
    reason = forms.CharField(max_length=1000, help_text="Shown on the board while the rollback pins it.")

    def __init__(self, *args: Any, versions: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(v, f"v{v}") for v in versions]  # type: ignore[attr-defined]


class LockForm(forms.Form):
    reason = forms.CharField(max_length=1000)


class IncidentForm(forms.Form):
    started_at = forms.DateTimeField(
        label="Started at (UTC)", required=False, help_text="e.g. 2026-03-01 14:05; empty: now."
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    link = forms.URLField(required=False, assume_scheme="https", help_text="The ticket or status page.")


class CloseIncidentForm(forms.Form):
    note = forms.CharField(label="How it was resolved", max_length=1000)
