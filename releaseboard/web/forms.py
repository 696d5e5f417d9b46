"""Forms: shape and required fields only. The rules (names, versions, states) are the
services' to check; their refusals are attached to the form with `show_refusal`."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms

from releaseboard.branching import BranchNames
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
        kwargs["initial"] = initial
        super().__init__(*args, **kwargs)

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
        help_text=(
            "Lowercase letters, digits, '.', '_' and '-' (and '/' to group), e.g. login-form. "
            "The prefix is added for you."
        ),
    )
    purpose = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="What the branch is for.")
    ticket_url = forms.URLField(label="Ticket link", required=False, assume_scheme="https")

    def __init__(self, *args: Any, names: BranchNames | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.names = names or BranchNames()
        # The page shows the final name as it is typed (static/releaseboard.js reads these).
        self.fields["name"].widget.attrs.update(
            {
                "data-final-name": "branch-final-name",
                "data-prefix-feature": self.names.feature_prefix,
                "data-prefix-hotfix": self.names.hotfix_prefix,
                "autocomplete": "off",
            }
        )

    def clean(self) -> dict[str, Any]:
        """A typed prefix of the chosen kind is the one the service adds: drop it, so
        `feature/login` asked as a Feature becomes feature/login, not feature/feature/login.
        The other kind's prefix is a mistake worth a question, and `..` is named as such
        (the service's generic message would not say which character is wrong)."""
        data = super().clean() or {}
        name, kind = data.get("name"), data.get("kind")
        if not name or kind not in ("feature", "hotfix"):
            return data
        own = self.names.feature_prefix if kind == "feature" else self.names.hotfix_prefix
        other = self.names.hotfix_prefix if kind == "feature" else self.names.feature_prefix
        if own and name.startswith(own):
            name = name[len(own) :]
        elif other and name.startswith(other):
            self.add_error(
                "name",
                f"'{other}' is the prefix of the other kind: choose that kind above, or drop '{other}' from the name.",
            )
            return data
        if ".." in name:
            self.add_error("name", "A branch name may not contain '..' (two dots in a row); use one dot or a '-'.")
            return data
        data["name"] = name
        return data


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
