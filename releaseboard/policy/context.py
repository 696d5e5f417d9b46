from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from releaseboard.policy.guard import reset_since
from releaseboard.policy.models import DriftAlarm, DriftState
from releaseboard.roles import Perm, has_perm


def drift_banner(request: HttpRequest) -> dict[str, Any]:
    """Open drift alarms, for the banner every signed-in user sees on every page."""
    user = getattr(request, "user", None)
    if not has_perm(user, Perm.VIEW):
        return {"drift_alarms": []}
    alarms = DriftAlarm.objects.filter(state=DriftState.OPEN).select_related("repository")
    return {"drift_alarms": [a for a in alarms if not reset_since(a)]}
