"""Printing: data on stdout (a table or the API's JSON), progress and logs on stderr."""

from __future__ import annotations

import itertools
import json
import sys
import time
from typing import Any

from .client import FAILED, OK, Api


def emit(data: Any, fmt: str, columns: list[str] | None = None, rows: list[dict[str, Any]] | None = None) -> None:
    if fmt == "json":
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
        return
    if rows is None:
        rows = data if isinstance(data, list) else [data]
    if columns is None:
        columns = [k for k, v in (rows[0] if rows else {}).items() if not isinstance(v, dict | list)]
    table(rows, columns)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    text = str(value)
    if len(text) == 40 and all(c in "0123456789abcdef" for c in text):
        return text[:10]  # a SHA
    return text.replace("\n", " ")[:60]


def table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    print("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        print("(none)")


def note(message: str) -> None:
    print(message, file=sys.stderr)


def follow(api: Api, job_id: int, *, quiet: bool = False, after: int = 0) -> dict[str, Any]:
    """Stream a job's log to stderr until it ends (long-poll); return the final job."""
    spinner = itertools.cycle("|/-\\")
    show_spinner = quiet and sys.stderr.isatty()
    if not quiet:
        note(f"Job #{job_id}: following its log (Ctrl-C stops following; the job goes on).")
    while True:
        page = api.request("GET", f"/jobs/{job_id}/log", query={"after": after, "wait": 20})
        for line in page["lines"]:
            if not quiet:
                sys.stderr.write(line["text"] if line["text"].endswith("\n") else line["text"] + "\n")
        sys.stderr.flush()
        after = page["next_after"]
        if show_spinner:
            sys.stderr.write(f"\r{next(spinner)} job #{job_id} {page['job']['state']} ")
            sys.stderr.flush()
        if page["done"]:
            if show_spinner:
                sys.stderr.write("\r")
            job: dict[str, Any] = api.request("GET", f"/jobs/{job_id}")
            return job
        if not page["lines"]:
            time.sleep(0.2)  # the server waited already; this only spaces out retries


def job_outcome(job: dict[str, Any]) -> int:
    if job["state"] == "succeeded":
        note(f"Job #{job['id']} succeeded. {job['message']}".rstrip())
        return OK
    note(f"Job #{job['id']} {job['state']} ({job['reason'] or 'no reason'}): {job['message']}".rstrip())
    return FAILED
