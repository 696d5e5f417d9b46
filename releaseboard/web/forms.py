"""Forms: shape and required fields only. The rules (names, versions, states) are the
services' to check; their refusals are attached to the form with `show_refusal`."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms

from releaseboard.jobs.models import JobState
from releaseboard.refusals import Refused
from releaseboard.releases.models import Repository


class StartsWorkForm(forms.Form):
    """A form that starts a job. The hidden key is made when the form is shown, so a
    double click or a browser retry of the same form reaches the service with the same
    key and creates one job, not two."""

    idempotency_key = forms.UUIDField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        initial = dict(kwargs.pop("initial", None) or {})
        initial.setdefault("idempotency_key", uuid.uuid4())
        super().__init__(*args, initial=initial, **kwargs)

    @property
    def key(self) -> str | None:
        value = self.cleaned_data.get("idempotency_key")
        return str(value) if value else None

    def show_refusal(self, exc: Refused) -> None:
        self.add_error(exc.field if exc.field in self.fields else None, exc.message)


class RequestBranchForm(StartsWorkForm):
    kind = forms.ChoiceField(
        choices=[("feature", "Feature — a new function"), ("hotfix", "Hotfix — a fix, no new features")],
        widget=forms.RadioSelect,
        initial="feature",
    )
    name = forms.CharField(
        label="Short name",
        max_length=100,
        strip=True,
        help_text="Lowercase letters, digits, '.', '_' and '-', e.g. login-form. The prefix is added for you.",
    )
    purpose = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="What the branch is for.")
    ticket_url = forms.URLField(label="Ticket link", required=False, assume_scheme="https")


class RequestPromotionForm(StartsWorkForm):
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)


class ReleaseForm(StartsWorkForm):
    version = forms.CharField(max_length=32, help_text="Proposed from the promotions; change it for a major release.")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}), required=False)


class JobFilterForm(forms.Form):
    repository = forms.ModelChoiceField(Repository.objects.all(), required=False, empty_label="All repositories")
    state = forms.ChoiceField(choices=[("", "All states"), *JobState.choices], required=False)


class AuditFilterForm(forms.Form):
    repository = forms.ModelChoiceField(Repository.objects.all(), required=False, empty_label="All repositories")
    actor = forms.CharField(required=False, max_length=150)
    action = forms.ChoiceField(choices=[("", "All actions")], required=False)

    def __init__(self, *args: Any, actions: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "All actions"), *((a, a) for a in actions)]  # type: ignore[attr-defined]


def posted_key(data: Any) -> str | None:
    """The idempotency key of a one-button form (no other fields); a malformed key is
    refused rather than dropped, so a retry can never silently start a second job."""
    form = StartsWorkForm(data)
    if not form.is_valid():
        raise Refused("The form was damaged; reload the page and try again.")
    return form.key
