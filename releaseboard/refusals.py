"""The one exception for "the rules say no", shared by every app's services.

It lives outside any app so that apps can refuse without importing each other (policy
and integrations refuse as the release services do, and the web and the API turn every
refusal into a message or a problem document the same way).
"""

from __future__ import annotations


class Refused(Exception):
    """A request the rules refuse; the message says what, why and what to do next.

    `field` names the form field at fault (a validation error); `forbidden` marks a
    refusal of who asks rather than of the current state (the API answers 403, not 409).
    """

    def __init__(self, message: str, field: str | None = None, *, forbidden: bool = False) -> None:
        self.message = message
        self.field = field
        self.forbidden = forbidden
        super().__init__(message)
