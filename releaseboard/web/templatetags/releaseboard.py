"""Small display helpers used across the templates."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def sha(value: str | None) -> str:
    """The short form of a commit SHA, as git shows it."""
    return (value or "")[:10]


@register.filter
def http_url(value: str | None) -> str:
    """The URL if it is http(s), else "": a ticket link must never become a
    javascript: or data: link, whatever was stored."""
    value = (value or "").strip()
    return value if value.lower().startswith(("http://", "https://")) else ""


@register.filter
def tone(state: str | None) -> str:
    """The colour family of a state badge, so every page colours states alike."""
    good = {"succeeded", "passed", "released", "promoted", "clean", "active", "ok"}
    bad = {"failed", "conflict", "cancelled", "gone", "error", "refused"}
    busy = {"running", "queued", "promoting", "pending", "requested"}
    value = (state or "").lower()
    if value in good:
        return "good"
    if value in bad:
        return "bad"
    if value in busy:
        return "busy"
    return "neutral"


@register.filter
def ago(value: datetime | None) -> str:
    """ "just now" under a minute, else "5 minutes ago": never "0 minutes ago"."""
    if value is None:
        return "—"
    if timezone.now() - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value)} ago"


@register.filter
def version(value: object) -> str:
    """ "v1.4.0", or "no release yet" for the 0.0.0 a repository starts from."""
    text = str(value or "")
    return "no release yet" if text in ("", "0.0.0") else f"v{text}"


@register.simple_tag
def idempotency_field() -> str:
    """A hidden idempotency key for a one-button form that starts a job. Each rendered
    form gets its own key: two buttons sharing one would make the second click return
    the first button's job instead of doing its own work."""
    return format_html('<input type="hidden" name="idempotency_key" value="{}">', uuid.uuid4())
