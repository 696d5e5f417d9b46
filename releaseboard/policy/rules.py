"""Freeze windows as pure time logic: no Django, no I/O, so it is tested on its own.

A window is a set of weekdays and a local time range in an IANA time zone. It starts
on each listed weekday at `start`; when `end` is not after `start` it ends on the next
day (22:00–06:00 covers the night, 00:00–00:00 a whole day). Times are wall-clock times
of the zone, so a window keeps its local hours across daylight-saving changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Window:
    weekdays: frozenset[int]  # 0 = Monday … 6 = Sunday
    start: time
    end: time
    zone: str


@dataclass(frozen=True)
class Occurrence:
    """One concrete freeze, in UTC."""

    starts_at: datetime
    ends_at: datetime


def valid_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone this system knows (e.g. Europe/Berlin)."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def occurrences(window: Window, around: datetime, days_ahead: int = 8) -> Iterator[Occurrence]:
    """The window's freezes that start from the day before `around` to `days_ahead` days after."""
    if around.tzinfo is None:
        raise ValueError("around must be timezone-aware")
    zone = ZoneInfo(window.zone)
    today = around.astimezone(zone).date()
    for offset in range(-1, days_ahead + 1):
        day = today + timedelta(days=offset)
        if day.weekday() not in window.weekdays:
            continue
        end_day = day if window.end > window.start else day + timedelta(days=1)
        yield Occurrence(
            datetime.combine(day, window.start, tzinfo=zone).astimezone(UTC),
            datetime.combine(end_day, window.end, tzinfo=zone).astimezone(UTC),
        )


def current(windows: Iterable[Window], now: datetime) -> Occurrence | None:
    """The freeze in force at `now` (the one that ends last if several overlap), or None."""
    active = [o for w in windows for o in occurrences(w, now) if o.starts_at <= now < o.ends_at]
    return max(active, key=lambda o: o.ends_at) if active else None


def upcoming(windows: Iterable[Window], now: datetime) -> Occurrence | None:
    """The next freeze that starts after `now`, or None when no window has a weekday."""
    later = [o for w in windows for o in occurrences(w, now) if o.starts_at > now]
    return min(later, key=lambda o: o.starts_at) if later else None


def describe(window: Window) -> str:
    """ "Friday, Saturday 16:00–23:59 Europe/Berlin"."""
    days = ", ".join(WEEKDAYS[d] for d in sorted(window.weekdays))
    return f"{days} {window.start:%H:%M}\u2013{window.end:%H:%M} {window.zone}"
