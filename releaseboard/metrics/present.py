"""How a figure reads: durations in words, rates in percent (pure)."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def value(key: str, number: float | None) -> str:
    if number is None:
        return "—"
    if key == "frequency":
        return f"{number:.2f} per week"
    if key in ("failure_rate", "rework"):
        return f"{number * 100:.1f} %"
    return duration(number)
