"""Keyset pagination, shared by the long lists (audit log, releases).

A page is the `size` rows just below a key (or just above it, going back towards the
newest), found through the index on that key: a page deep in a million rows costs what
the first page costs, where OFFSET would read and skip every row before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import QuerySet

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page, newest first, with the keys that lead to its neighbours."""

    items: list[T]
    newer_after: int | None  # ?after= for the page of newer rows, None on the newest page
    older_before: int | None  # ?before= for the page of older rows, None on the oldest page

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def cursor(value: str | None) -> int | None:
    """A pager cursor from a query string; anything but a positive whole number means the
    first page (a mangled link should not be an error page)."""
    value = value or ""
    return int(value) if value.isdigit() and 0 < int(value) < 2**62 else None


def keyset_page(
    rows: QuerySet[Any], key: str, *, before: int | None = None, after: int | None = None, size: int = 50
) -> Page[Any]:
    """The page of `rows` (newest first by the integer column `key`) just below `before`,
    or just above `after`; the first page when neither is given."""
    if after is not None:
        found = list(rows.filter(**{f"{key}__gt": after}).order_by(key)[: size + 1])
        has_newer = len(found) > size
        found = found[:size][::-1]
        has_older = bool(found) and rows.filter(**{f"{key}__lt": getattr(found[-1], key)}).exists()
    else:
        below = rows.filter(**{f"{key}__lt": before}) if before is not None else rows
        found = list(below.order_by(f"-{key}")[: size + 1])
        has_older = len(found) > size
        found = found[:size]
        has_newer = (
            before is not None and bool(found) and rows.filter(**{f"{key}__gt": getattr(found[0], key)}).exists()
        )
    return Page(
        items=found,
        newer_after=getattr(found[0], key) if found and has_newer else None,
        older_before=getattr(found[-1], key) if found and has_older else None,
    )
