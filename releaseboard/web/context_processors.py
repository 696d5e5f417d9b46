from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from releaseboard.roles import Perm, perms_of, roles_of


def roles(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's roles and permissions, for showing or hiding buttons.
    Views check permissions again on the server; this only decides what is shown."""
    user = getattr(request, "user", None)
    perms = perms_of(user)
    return {"user_roles": sorted(r.value for r in roles_of(user)), "can": {p.value: (p in perms) for p in Perm}}
