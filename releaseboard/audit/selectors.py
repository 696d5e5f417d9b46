"""Reading the audit log: filters, keyset pages, the list of actions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from releaseboard.audit.models import AuditEvent
from releaseboard.paging import Page, keyset_page


@dataclass(frozen=True)
class EventFilter:
    """The filters Ops can set; dates are whole days in the site's time zone, both ends included."""

    repository_id: int | None = None
    actor: str = ""
    action: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def apply(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if self.repository_id is not None:
            events = events.filter(repository_id=self.repository_id)
        if self.actor:
            events = events.filter(actor_name=self.actor)
        if self.action:
            events = events.filter(action=self.action)
        if self.date_from is not None:
            events = events.filter(created_at__gte=_start_of(self.date_from))
        if self.date_to is not None:
            events = events.filter(created_at__lt=_start_of(self.date_to + dt.timedelta(days=1)))
        return events

    def events(self) -> QuerySet[AuditEvent]:
        return self.apply(AuditEvent.objects.all())


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


EventPage = Page


def page_of_events(
    event_filter: EventFilter, *, before: int | None = None, after: int | None = None, size: int = 50
) -> Page[AuditEvent]:
    """A keyset page of events by seq, newest first (see releaseboard/paging.py)."""
    return keyset_page(event_filter.events(), "seq", before=before, after=after, size=size)


def actions() -> list[str]:
    """The distinct actions, for the filter's choices. A recursive query hops from one
    action to the next through the (action, seq) index, so it reads one index entry per
    action instead of scanning every event (SELECT DISTINCT would)."""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH RECURSIVE found(action) AS (
                    SELECT MIN(action) FROM {table}
                    UNION ALL
                    SELECT (SELECT MIN(action) FROM {table} WHERE action > found.action)
                    FROM found WHERE found.action IS NOT NULL
                )
                SELECT action FROM found WHERE action IS NOT NULL"""
        )
        return [row[0] for row in cursor.fetchall()]
