"""Performance bands of the 2023 Accelerate State of DevOps Report (DORA, Google Cloud).

The report describes four clusters by typical values ("on demand", "less than one day",
"5%"); the cut-offs below turn those into thresholds, as docs/metrics.md explains.
Pure: no Django.
"""

from __future__ import annotations

SOURCE = "DORA, Accelerate State of DevOps Report 2023 (performance clusters)"
HOUR, DAY, WEEK, MONTH = 3600, 86400, 7 * 86400, 30 * 86400


def deployment_frequency(per_week: float | None) -> str:
    if per_week is None:
        return ""
    if per_week >= 7:
        return "elite"  # on demand: at least daily on average
    if per_week >= 1:
        return "high"  # between once per day and once per week
    if per_week >= 7 / 30:
        return "medium"  # between once per week and once per month
    return "low"


def lead_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < DAY:
        return "elite"
    if seconds < WEEK:
        return "high"
    if seconds < MONTH:
        return "medium"
    return "low"


def change_failure_rate(rate: float | None) -> str:
    if rate is None:
        return ""
    if rate <= 0.05:
        return "elite"
    if rate <= 0.10:
        return "high"
    if rate <= 0.15:
        return "medium"
    return "low"


def time_to_restore(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < HOUR:
        return "elite"
    if seconds < DAY:
        return "high"
    if seconds < WEEK:
        return "medium"
    return "low"
