"""Read the JUnit XML report a test command may write to $RELEASEBOARD_JUNIT_XML.

The file comes from the repository's code, so it is untrusted: its size is capped, a
DOCTYPE (the door to entity expansion) is refused, and only a summary is kept.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

MAX_BYTES = 5 * 1024 * 1024
MAX_FAILED = 25
MAX_DETAIL_LINES = 30


class ReportRefused(ValueError):
    """The report cannot be read; the message says why, for the job log."""


def summarise(path: Path) -> dict[str, Any] | None:
    """The report's totals and failing tests, or None when no report was written."""
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_BYTES:
        raise ReportRefused(f"the JUnit report is larger than {MAX_BYTES // (1024 * 1024)} MB")
    raw = path.read_bytes()
    if b"<!DOCTYPE" in raw.upper():
        raise ReportRefused("the JUnit report has a DOCTYPE, which Releaseboard does not read")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise ReportRefused(f"the JUnit report is not valid XML ({exc})") from None
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed: list[dict[str, str]] = []
    for case in root.iter("testcase"):
        totals["tests"] += 1
        for kind in ("failure", "error"):
            problem = case.find(kind)
            if problem is None:
                continue
            totals["failures" if kind == "failure" else "errors"] += 1
            if len(failed) < MAX_FAILED:
                name = ".".join(p for p in (case.get("classname", ""), case.get("name", "")) if p)
                detail = (problem.text or "").strip().splitlines()[-MAX_DETAIL_LINES:]
                failed.append(
                    {
                        "name": name or "(unnamed test)",
                        "kind": kind,
                        "message": (problem.get("message") or "").strip()[:500],
                        "detail": "\n".join(detail)[:5000],
                    }
                )
        if case.find("skipped") is not None:
            totals["skipped"] += 1
    return {**totals, "failed": failed}
