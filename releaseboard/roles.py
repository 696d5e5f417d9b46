"""Roles and what each may do: the one place that maps roles to permissions.

Roles are Django groups with these names. A user may hold several; superusers hold all.
"""

from __future__ import annotations

import enum
from typing import Any

from django.core.exceptions import PermissionDenied


class Role(enum.StrEnum):
    DEVELOPER = "Developer"
    RELEASE_MANAGER = "Release manager"
    OPS = "Ops"
    ADMIN = "Admin"


class Perm(enum.StrEnum):
    VIEW = "view"  # the board, branches, promotions, jobs and their logs, releases
    REQUEST_BRANCH = "request_branch"
    REQUEST_PROMOTION = "request_promotion"
    RUN_TESTS = "run_tests"
    REFRESH = "refresh"
    PROMOTE = "promote"  # promote to staging and to master
    COPY_MASTER = "copy_master"
    CANCEL_JOB = "cancel_job"
    RETRY_JOB = "retry_job"  # and see the jobs that need attention
    VIEW_AUDIT = "view_audit"
    CONFIGURE = "configure"  # repositories, users and roles
    DEPLOY = "deploy"  # deploy, redeploy and roll back protected environments (production)
    MANAGE_INCIDENTS = "manage_incidents"  # mark a production deployment as an incident's cause; close one


_DEVELOPER = {Perm.VIEW, Perm.REQUEST_BRANCH, Perm.REQUEST_PROMOTION, Perm.RUN_TESTS, Perm.REFRESH}

ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.DEVELOPER: frozenset(_DEVELOPER),
    Role.RELEASE_MANAGER: frozenset(
        _DEVELOPER | {Perm.PROMOTE, Perm.COPY_MASTER, Perm.CANCEL_JOB, Perm.RETRY_JOB, Perm.VIEW_AUDIT, Perm.DEPLOY}
    ),
    # Ops change nothing in the branch flow; deploying and incidents are their own action.
    Role.OPS: frozenset({Perm.VIEW, Perm.VIEW_AUDIT, Perm.DEPLOY, Perm.MANAGE_INCIDENTS}),
    Role.ADMIN: frozenset({Perm.VIEW, Perm.VIEW_AUDIT, Perm.CONFIGURE, Perm.REFRESH}),
}


def roles_of(user: Any) -> set[Role]:
    """The roles a user holds now (read from the DB on every request, so a removed role
    takes effect at once)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    if user.is_superuser:
        return set(Role)
    names = set(user.groups.values_list("name", flat=True))
    return {role for role in Role if role.value in names}


def perms_of(user: Any) -> set[Perm]:
    perms: set[Perm] = set()
    for role in roles_of(user):
        perms |= ROLE_PERMS[role]
    return perms


def has_perm(user: Any, perm: Perm) -> bool:
    return perm in perms_of(user)


def require(user: Any, perm: Perm) -> None:
    """Raise PermissionDenied (a 403 in views) unless the user may do `perm`."""
    if not has_perm(user, perm):
        raise PermissionDenied(f"You need a role that may {perm.value.replace('_', ' ')}.")
