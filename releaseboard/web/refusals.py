"""A refused request gets the site's own page, with the reason the server knows and a
way back, and is logged as one line, not as an error with a traceback.

Django would log every PermissionDenied with its traceback (django.request, WARNING),
which buries real errors under ordinary refusals such as an Ops user opening a form
meant for developers.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

DEFAULT_REASON = "Your roles do not allow this."


class RefusalMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # Subclasses (e.g. a sign-in lockout) keep their own handling.
        if type(exception) is not PermissionDenied:
            return None
        return refusal_page(request, str(exception) or DEFAULT_REASON)


def refusal_page(request: HttpRequest, reason: str) -> HttpResponse:
    referer = request.headers.get("referer", "")
    back = (
        referer
        if referer
        and url_has_allowed_host_and_scheme(
            referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        and referer != request.build_absolute_uri()
        else ""
    )
    return render(request, "403.html", {"reason": reason, "back": back}, status=403)
