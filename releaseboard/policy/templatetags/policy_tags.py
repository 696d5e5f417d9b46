from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from releaseboard.policy import guard
from releaseboard.releases.models import Repository

register = template.Library()


@register.simple_tag
def policy_status(repository: Repository) -> dict[str, Any]:
    """What the board says about the repository's policy: the lock, or the freeze in
    force, or the next freeze window."""
    now = timezone.now()
    return {
        "lock": guard.active_lock(repository),
        "freeze": guard.freeze_now(repository, now),
        "next_freeze": guard.next_freeze(repository, now),
    }
