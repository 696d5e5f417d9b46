"""The buttons' common path: call one service; a refusal becomes the page's message and
the browser goes back where the button was; otherwise say what started and go on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.contrib import messages
from django.http import HttpRequest, HttpResponse

from releaseboard.refusals import Refused

T = TypeVar("T")


def act(
    request: HttpRequest,
    call: Callable[[], T],
    *,
    back: Callable[[], HttpResponse],
    then: Callable[[T], HttpResponse] | None = None,
    success: str | Callable[[T], str] = "",
) -> HttpResponse:
    """Run `call`. Refused: its sentence as an error message, then `back()`. Done: the
    `success` message (a string, or made from the result), then `then(result)`, or
    `back()` when there is nowhere else to go."""
    try:
        result = call()
    except Refused as exc:
        messages.error(request, exc.message)
        return back()
    text = success(result) if callable(success) else success
    if text:
        messages.success(request, text)
    return then(result) if then is not None else back()
