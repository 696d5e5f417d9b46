"""Every page at two data sizes: SQL queries, milliseconds and bytes, through Django's
test Client with a signed-in release manager (middleware, session, templates: all of
the request but the network).

Sizes (totals over 20 repositories; all open branches are on repo-00, whose board,
radar and detail pages are the ones fetched):

    tenth: 100 open + 100 closed branches, 100 promotions, 100 releases, 1,000 jobs,
           100,000 audit events
    full:  100 open + 900 closed branches, 1,000 promotions, 1,000 releases, 10,000 jobs
           (20 log lines and 3 steps each), 1,000,000 audit events

Rows come from bench/dataset.py's bulk builder, the audit events from
bench/audit_listing.py's chain filler (real hashes), then a signed checkpoint.

    .venv/bin/python bench/pages.py                                   # SQLite
    .venv/bin/python bench/pages.py --database-url postgres://postgres@127.0.0.1:5432/rb_bench_pages
    .venv/bin/python bench/pages.py --events 20000 --profile "board (100 open, radar)" --profile promotion
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import reset_postgres  # noqa: E402

PAGE_GOAL_MS, BOARD_GOAL_MS = 300, 150


def setup(workdir: Path, database_url: str) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    os.environ["RELEASEBOARD_VAR_DIR"] = str(workdir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "releaseboard.settings"
    os.environ["RELEASEBOARD_ALLOWED_HOSTS"] = "testserver,localhost"
    if database_url:
        reset_postgres(database_url)
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def pages(repo: Any) -> dict[str, Callable[[], str]]:
    """Each page by its URL, built from repo-00's data (looked up when fetched)."""
    from django.urls import reverse

    from releaseboard.jobs.models import Job
    from releaseboard.releases.models import Branch, BranchState, Promotion

    def first(model: Any, **filters: Any) -> Any:
        return model.objects.filter(**filters).order_by("id").first()

    def radar_cell() -> str:
        a, b = Branch.objects.filter(repository=repo, state=BranchState.ACTIVE, kind="feature").order_by("name")[:2]
        return reverse("web:radar_cell", args=[repo.name, a.pk, b.pk])

    return {
        "repository list": lambda: reverse("web:repository_list"),
        "board (100 open, radar)": lambda: reverse("web:board", args=[repo.name]),
        "radar cell": radar_cell,
        "branch": lambda: reverse(
            "web:branch_detail", args=[repo.name, first(Branch, repository=repo, state=BranchState.ACTIVE).pk]
        ),
        "promotion": lambda: reverse(
            "web:promotion_detail", args=[repo.name, first(Promotion, repository=repo, state="open").pk]
        ),
        "release preview": lambda: reverse("web:release_new", args=[repo.name]),
        "releases": lambda: reverse("web:release_list", args=[repo.name]),
        "policy": lambda: reverse("web:policy", args=[repo.name]),
        "copy master": lambda: reverse("web:copy_master", args=[repo.name]),
        "jobs": lambda: reverse("web:job_list"),
        "jobs needing attention": lambda: reverse("web:job_attention"),
        "job": lambda: reverse("web:job_detail", args=[first(Job, scope_id=repo.pk).pk]),
        "job log": lambda: reverse("web:job_log", args=[first(Job, scope_id=repo.pk).pk]) + "?after=0",
        "audit log": lambda: reverse("web:audit_list"),
        "audit log, deep keyset page": lambda: reverse("web:audit_list") + "?before=10000",
        "audit verify": lambda: reverse("web:audit_verify"),
    }


def measure(client: Any, url: str, rounds: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url, headers=headers)  # warm per-process caches
    samples: list[float] = []
    cpu: list[float] = []  # this process's CPU: less sensitive to a loaded machine (not PostgreSQL's)
    queries = 0
    for _ in range(rounds):
        with CaptureQueriesContext(connection) as captured:
            c0, t0 = time.process_time(), time.perf_counter()
            response = client.get(url, headers=headers)
            samples.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        queries = len(captured.captured_queries)
        if response.status_code not in (200, 204):
            raise SystemExit(f"{url}: HTTP {response.status_code}")
    header_bytes = sum(len(k) + len(v) + 4 for k, v in response.items())
    return {
        "status": response.status_code,
        "queries": queries,
        "ms": statistics.median(samples),
        "max_ms": max(samples),
        "cpu_ms": statistics.median(cpu),
        "bytes": len(response.content),
        "header_bytes": header_bytes,
    }


def measure_all(client: Any, repo: Any, rounds: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name, url in pages(repo).items():
        out[name] = measure(client, url(), rounds)
        print(f"  {name:<30} {out[name]['ms']:8.1f} ms {out[name]['queries']:4d} queries {out[name]['bytes']:9d} B")
    board_url = pages(repo)["board (100 open, radar)"]()
    found = re.search(r'\?since=([0-9a-f]+)"', client.get(board_url).content.decode())
    if not found:
        raise SystemExit("the board carries no change token")
    poll = board_url + f"?since={found.group(1)}"
    out["board poll, unchanged"] = measure(client, poll, rounds, headers={"HX-Request": "true"})
    p = out["board poll, unchanged"]
    name = "board poll, unchanged"
    print(f"  {name:<30} {p['ms']:8.1f} ms {p['queries']:4d} queries {p['bytes']:9d} B (HTTP {p['status']})")
    return out


def build(repos: list[Any], user: Any, size: Any, events: int) -> float:
    from bench.audit_listing import fill
    from bench.dataset import bulk_grow
    from releaseboard.audit import checkpoint

    t0 = time.perf_counter()
    bulk_grow(repos, user, size)
    fill(events)
    checkpoint.write(created_by="bench")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default="", help="a throwaway PostgreSQL DB (dropped and created)")
    ap.add_argument("--workdir", default="/tmp/releaseboard-pages-bench")
    ap.add_argument("--rounds", type=int, default=7, help="requests per page per size (default: %(default)s)")
    ap.add_argument("--events", type=int, default=1_000_000, help="audit events at full size")
    ap.add_argument("--json", default="")
    ap.add_argument("--profile", action="append", default=[], help="after measuring, cProfile this page (repeatable)")
    args = ap.parse_args()
    setup(Path(args.workdir), args.database_url)

    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client

    from bench.dataset import Size, repository
    from releaseboard.roles import Role

    user = User.objects.create(username="rm", email="rm@example.com")
    user.groups.add(Group.objects.get_or_create(name=Role.RELEASE_MANAGER.value)[0])
    repos = [repository(f"repo-{i:02d}") for i in range(20)]
    client = Client()
    client.force_login(user)
    tenth = Size(open_branches=100, closed_branches=100, promotions=100, releases=100, jobs=1000)
    rest = Size(open_branches=0, closed_branches=800, promotions=900, releases=900, jobs=9000)
    results: dict[str, Any] = {}
    for label, size, events in (("tenth", tenth, args.events // 10), ("full", rest, args.events)):
        took = build(repos, user, size, events)
        print(f"{label}: built in {took:.0f} s ({connection.vendor}); measuring {args.rounds} requests per page")
        results[label] = measure_all(client, repos[0], args.rounds)

    load = os.getloadavg()
    print(
        f"\n{connection.vendor}, nproc={os.cpu_count()}, Python {platform.python_version()}, "
        f"load average {load[0]:.1f}/{load[1]:.1f}; median of {args.rounds} requests"
    )
    print(f"{'page':<30}{'queries':>12}{'ms tenth':>10}{'ms full':>9}{'CPU ms':>8}{'KB full':>9}  goal")
    for name, full in results["full"].items():
        small = results["tenth"][name]
        goal = BOARD_GOAL_MS if name.startswith("board") else PAGE_GOAL_MS
        verdict = "ok" if full["ms"] <= goal else "MISSED"
        print(
            f"{name:<30}{small['queries']:>5} -> {full['queries']:<4}{small['ms']:>10.1f}{full['ms']:>9.1f}"
            f"{full['cpu_ms']:>8.1f}{full['bytes'] / 1024:>9.1f}  <= {goal} ms {verdict}"
        )
    poll = results["full"]["board poll, unchanged"]
    print(f"unchanged board poll: HTTP {poll['status']}, {poll['bytes']} B body + ~{poll['header_bytes']} B headers")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    for name in args.profile:
        profile(client, pages(repos[0])[name]())
    return 0


def profile(client: Any, url: str) -> None:
    """Where one request's time goes: the 30 entries with the most cumulative time."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    client.get(url)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
    print(f"\nprofile of {url}:\n{out.getvalue()}")


if __name__ == "__main__":
    sys.exit(main())
