"""Writing audit events."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection

from releaseboard.audit.models import AuditEvent

SYSTEM_ACTOR = "releaseboard"


class NotInTransaction(RuntimeError):
    pass


def record(
    action: str,
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    repository: Any = None,
    obj: Any = None,
    from_sha: str = "",
    to_sha: str = "",
    result: str = "ok",
    message: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event. Must run inside the transaction of the change it records,
    so the change and its event are committed together or not at all.

    `repository` is any object with id and name; `obj` any model instance (its class
    name, id and str are stored). actor None means Releaseboard itself (a worker).
    """
    if not connection.in_atomic_block:
        raise NotInTransaction("audit.record() must be called inside transaction.atomic()")
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user is not None else SYSTEM_ACTOR,
        action=action,
        repository_id=getattr(repository, "id", None),
        repository_name=getattr(repository, "name", "") or "",
        object_type=type(obj).__name__.lower() if obj is not None else "",
        object_id=getattr(obj, "pk", None),
        object_repr=str(obj)[:255] if obj is not None else "",
        from_sha=from_sha or "",
        to_sha=to_sha or "",
        result=result,
        message=message,
        details=details or {},
    )
