"""Settings → Tokens: make personal access tokens, see their last use, revoke them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from releaseboard.roles import Perm, has_perm
from releaseboard.tokens.models import AccessToken, Scope
from releaseboard.tokens.service import MAX_DAYS, TokenRefused, create_token, revoke_token


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where it is used, e.g. ci or laptop.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="A token never grants more than your roles allow when it is used.",
    )
    days = forms.IntegerField(min_value=1, max_value=MAX_DAYS, initial=30, label="Expires after (days)")


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST if request.method == "POST" else None)
    new_raw = None
    if request.method == "POST" and form.is_valid():
        try:
            new = create_token(
                request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                days=form.cleaned_data["days"],
            )
        except TokenRefused as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            # Rendered, not redirected: the token is shown on this one page and never again.
            new_raw = new.raw
            form = TokenForm()
    user: Any = request.user
    mine = AccessToken.objects.filter(user=user)
    others = (
        AccessToken.objects.exclude(user=user).filter(revoked_at__isnull=True).select_related("user")
        if has_perm(request.user, Perm.CONFIGURE)
        else AccessToken.objects.none()
    )
    context = {"form": form, "tokens": mine, "others": others, "new_token": new_raw}
    return render(request, "tokens/token_list.html", context)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    # The owner's own tokens, or anyone's for an admin; others get 404 (no probing of ids).
    user: Any = request.user
    tokens = AccessToken.objects.select_related("user")
    if not has_perm(user, Perm.CONFIGURE):
        tokens = tokens.filter(user=user)
    token = get_object_or_404(tokens, pk=token_id)
    revoke_token(token, actor=request.user)
    messages.success(request, f"Token {token.name!r} of {token.user.get_username()} is revoked.")
    return redirect("tokens:token_list")
