"""CI statuses on the board: a card's contexts out of the board's one lookup."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def checks_for(board_checks: dict[Any, Any] | None, key: Any) -> Any:
    """The contexts shown for one card (a promotion id, or "staging"), or nothing."""
    return (board_checks or {}).get(key)
