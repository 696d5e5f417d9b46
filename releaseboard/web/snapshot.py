"""One page, one moment: the reads behind a page come from one snapshot of the database.

Without it a board rendered while a sync commits could show the heads and the radar
from before the sync next to the drift banner from after it. The page's view (and its
template, with the context processors, since they are rendered inside the view) reads
in one transaction:
- PostgreSQL: REPEATABLE READ, so every query sees the snapshot the first one took;
- SQLite: a plain (DEFERRED) read transaction, which in WAL mode keeps the snapshot its
  first read took while workers go on writing. Not Django's atomic(): settings open
  those IMMEDIATE, which would take the write lock for a page view.
Only for GET and HEAD: a POST writes through a service, in its own transaction.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse


@contextlib.contextmanager
def one_moment() -> Iterator[None]:
    """Read everything inside the block from one snapshot of the database."""
    if connection.in_atomic_block:  # a caller's transaction: its snapshot rules already
        yield
        return
    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:  # must be the transaction's first statement
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield
        return
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("BEGIN DEFERRED")
    try:
        yield
    except BaseException:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
        raise
    with connection.cursor() as cursor:
        cursor.execute("COMMIT")


def snapshot_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A view decorator: a GET of the page is computed and rendered from one snapshot."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return view(request, *args, **kwargs)
        with one_moment():
            return view(request, *args, **kwargs)

    return wrapped
