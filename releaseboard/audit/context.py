"""Who is acting through what: the name of the access token a request came with.

The API sets it for the length of one request; `record` adds it to every event written
meanwhile, so a change made with a token names the token as well as its user. The
services need not know that tokens exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_token_name: ContextVar[str] = ContextVar("audit_token_name", default="")


def current_token_name() -> str:
    return _token_name.get()


@contextmanager
def acting_with_token(name: str) -> Iterator[None]:
    reset = _token_name.set(name)
    try:
        yield
    finally:
        _token_name.reset(reset)


def mark_token(name: str) -> None:
    """Name the token for the rest of the current context. The API runs each request in
    a copy of the context (contextvars.copy_context), so the mark ends with the request."""
    _token_name.set(name)
