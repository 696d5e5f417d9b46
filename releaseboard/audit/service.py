"""Writing audit events."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.utils import timezone

from releaseboard.audit import chain
from releaseboard.audit.context import current_token_name
from releaseboard.audit.models import AuditEvent
from releaseboard.audit.signals import event_recorded

SYSTEM_ACTOR = "releaseboard"
# Key of the PostgreSQL advisory lock that serialises appends to the chain (any
# constant that no other part of Releaseboard uses; this one spells "audit").
CHAIN_LOCK_KEY = 0x61756469


class NotInTransaction(RuntimeError):
    pass


def lock_chain() -> None:
    """Hold the chain's append lock until the current transaction ends.

    Two transactions that read the same head would both append seq n+1 (one then fails
    on the unique seq) or fork the chain. On PostgreSQL a transaction-level advisory
    lock makes appends take turns; it is released at commit or rollback, so the next
    writer reads the head this one committed. SQLite needs nothing more: settings open
    every transaction IMMEDIATE, which takes the database's single write lock at BEGIN.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


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
    The event joins the hash chain: it gets the next seq and the hash of the head as
    its prev_hash, under a lock held until the transaction ends.
    """
    if not connection.in_atomic_block:
        raise NotInTransaction("audit.record() must be called inside transaction.atomic()")
    user: Any = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if user is not None and (token_name := current_token_name()):
        details = {**(details or {}), "token": token_name}  # a change made through the API with a token
    event = AuditEvent(
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
        details=chain.normalize_details(details),
    )
    lock_chain()
    head = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    event.seq, event.prev_hash = (head[0] + 1, head[1]) if head else (1, chain.GENESIS)
    # Taken under the lock, so created_at never goes backwards along the chain on one host.
    event.created_at = timezone.now()
    event.hash = chain.event_hash(event, event.prev_hash)
    event.save()
    event_recorded.send(sender=AuditEvent, event=event)
    return event
