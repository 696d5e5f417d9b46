"""Who gets into the Django admin, and which client address the sign-in lockout counts.

The admin is for the Admin role (and superusers), as releaseboard/roles.py says, not
for whoever has Django's is_staff flag. Those users may change the apps an Admin
configures (repositories, users and roles, sign-in lockouts) and nothing else there:
jobs and the audit log change only through the services.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.helpers import get_client_username
from django import forms
from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from releaseboard.roles import Perm, Role, has_perm, roles_of

# Apps whose models an Admin may view and change in the Django admin.
ADMIN_APPS = frozenset({"auth", "releases", "axes", "integrations", "deployments"})


def may_configure(user: Any) -> bool:
    return bool(user.is_active) and has_perm(user, Perm.CONFIGURE)


class AdminRoleAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form, asking for the Admin role instead of is_staff."""

    def confirm_login_allowed(self, user: Any) -> None:
        if not may_configure(user):
            raise forms.ValidationError(
                "This account does not hold the Admin role, so it cannot open the admin site.",
                code="invalid_login",
            )


class RoleAdminSite(AdminSite):
    site_header = "Releaseboard administration"
    site_title = "Releaseboard admin"
    login_form = AdminRoleAuthenticationForm

    def has_permission(self, request: HttpRequest) -> bool:
        # Read from the DB on every request: a removed Admin role shuts the door at once.
        return may_configure(request.user)


class AdminRoleBackend:
    """Grants the Admin role Django's model permissions on ADMIN_APPS. It authenticates
    no one (sign-in stays with ModelBackend behind the lockout)."""

    def authenticate(self, request: HttpRequest | None, **credentials: Any) -> None:
        return None

    def get_user(self, user_id: int) -> None:
        return None

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return self.has_module_perms(user_obj, perm.partition(".")[0])

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        if app_label not in ADMIN_APPS or not getattr(user_obj, "is_active", False):
            return False
        return Role.ADMIN in roles_of(user_obj)


def client_ip(request: HttpRequest) -> str | None:
    """The address a sign-in attempt came from, for the lockout.

    Directly on the internet that is the socket's peer. Behind the one TLS proxy
    (RELEASEBOARD_BEHIND_TLS_PROXY) it is the last X-Forwarded-For entry, the one that
    proxy appended; entries before it were sent by the client and are not believed, so
    a forged header cannot give an attacker a fresh address for every try.
    """
    if settings.BEHIND_TLS_PROXY:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return request.META.get("REMOTE_ADDR")


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """The page a locked-out sign-in gets: what happened and when to try again (429,
    with Retry-After for scripts)."""
    cool_off: timedelta = settings.AXES_COOLOFF_TIME
    minutes = max(1, int(cool_off.total_seconds() // 60))
    context = {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": minutes,
        "retry_at": timezone.now() + cool_off,
    }
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
