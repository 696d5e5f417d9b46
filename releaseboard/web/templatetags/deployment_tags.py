from __future__ import annotations

from typing import Any

from django import template

from releaseboard.deployments import selectors

register = template.Library()


@register.simple_tag
def environment_cards(repository: Any) -> list[selectors.EnvironmentCard]:
    """The environments lane of a repository, for templates that include it (the board)."""
    return selectors.lane(repository)


@register.filter
def behind_master(card: selectors.EnvironmentCard, latest_version: str) -> bool:
    return card.behind(latest_version)
