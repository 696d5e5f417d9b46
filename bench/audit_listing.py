"""Time the audit log listing on a million events: first page, deep pages by keyset,
filtered pages, the action list, and (for contrast) a deep page by OFFSET.

Builds a throwaway database: SQLite in --workdir (default), or the PostgreSQL database
named by --database-url (it must be empty or a previous run of this script; never point
it at a real one). The events are real chain links: hashes are computed in bulk with
releaseboard.audit.chain and inserted with executemany, so verify() can be timed too.

    .venv/bin/python bench/audit_listing.py                 # 1,000,000 events, SQLite
    .venv/bin/python bench/audit_listing.py --events 100000 --verify
    .venv/bin/python bench/audit_listing.py --database-url postgres://postgres@127.0.0.1/audit_bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REPOSITORIES = [f"repo-{i:02d}" for i in range(20)]
ACTORS = [f"user{i:02d}" for i in range(30)] + ["releaseboard"]
ACTIONS = [
    "branch.requested",
    "promotion.requested",
    "promotion.tested",
    "promotion.promoted",
    "job.started",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "release.requested",
    "release.tagged",
    "staging.copied",
    "repository.refreshed",
    "policy.violation",
    "job.retried",
    "repository.registered",
]


def setup(workdir: Path, database_url: str | None) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["RELEASEBOARD_VAR_DIR"] = str(workdir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "releaseboard.settings"
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(total: int, batch: int = 20000) -> None:
    from django.db import connection, transaction

    from releaseboard.audit import chain
    from releaseboard.audit.models import AuditEvent

    have = AuditEvent.objects.count()
    if have >= total:
        print(f"{have} events already there")
        return
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev = last if last else (0, chain.GENESIS)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    columns = [
        "created_at",
        "actor_id",
        "actor_name",
        "action",
        "repository_id",
        "repository_name",
        "object_type",
        "object_id",
        "object_repr",
        "from_sha",
        "to_sha",
        "result",
        "message",
        "details",
        "seq",
        "prev_hash",
        "hash",
    ]
    sql = f"INSERT INTO audit_auditevent ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    began = time.perf_counter()
    while seq < total:
        rows = []
        for _ in range(min(batch, total - seq)):
            seq += 1
            repo = seq % len(REPOSITORIES)
            content: dict[str, Any] = {
                "seq": seq,
                "created_at": start + dt.timedelta(seconds=seq * 60),
                "actor_id": None,
                "actor_name": ACTORS[(seq * 7) % len(ACTORS)],
                "action": ACTIONS[(seq * 11) % len(ACTIONS)],
                "repository_id": repo + 1,
                "repository_name": REPOSITORIES[repo],
                "object_type": "promotion",
                "object_id": seq // 3,
                "object_repr": f"feature/x-{seq // 3}",
                "from_sha": f"{seq:040x}",
                "to_sha": f"{seq + 1:040x}",
                "result": "ok",
                "message": f"bench event {seq}",
                "details": {"n": seq},
            }
            digest = chain.event_hash(content, prev)
            rows.append(
                [
                    content["created_at"],
                    None,
                    content["actor_name"],
                    content["action"],
                    content["repository_id"],
                    content["repository_name"],
                    "promotion",
                    content["object_id"],
                    content["object_repr"],
                    content["from_sha"],
                    content["to_sha"],
                    "ok",
                    content["message"],
                    json.dumps(content["details"]),
                    seq,
                    prev,
                    digest,
                ]
            )
            prev = digest
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
        print(f"\r{seq}/{total} events ({time.perf_counter() - began:.0f} s)", end="", flush=True)
    print()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def timed(label: str, fn: Callable[[], Any], rounds: int) -> float:
    fn()  # warm the cache
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    median = statistics.median(samples)
    print(f"{label:<58} {median:9.2f} ms  (min {min(samples):.2f}, max {max(samples):.2f})")
    return median


def run(rounds: int, with_verify: bool) -> dict[str, float]:
    from django.core.paginator import Paginator
    from django.db import connection

    from releaseboard.audit.models import AuditEvent
    from releaseboard.audit.selectors import EventFilter, actions, page_of_events

    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    print(f"{connection.vendor}, {head} events")
    everything = EventFilter()
    results = {
        "first page": timed("first page (50 newest)", lambda: page_of_events(everything), rounds),
        "deep page": timed(
            f"deep page by keyset (?before={head // 100})",
            lambda: page_of_events(everything, before=head // 100),
            rounds,
        ),
        "middle page": timed(
            f"middle page by keyset (?before={head // 2})", lambda: page_of_events(everything, before=head // 2), rounds
        ),
        "filter repository": timed(
            "filtered: repository, first page", lambda: page_of_events(EventFilter(repository_id=5)), rounds
        ),
        "filter repository deep": timed(
            f"filtered: repository, ?before={head // 100}",
            lambda: page_of_events(EventFilter(repository_id=5), before=head // 100),
            rounds,
        ),
        "filter actor+action": timed(
            "filtered: actor + action, first page",
            lambda: page_of_events(EventFilter(actor="user03", action="job.failed")),
            rounds,
        ),
        "filter dates": timed(
            "filtered: one day a year back (date range)",
            lambda: page_of_events(EventFilter(date_from=dt.date(2024, 6, 1), date_to=dt.date(2024, 6, 1))),
            rounds,
        ),
        "filter repository+dates": timed(
            "filtered: repository + one month",
            lambda: page_of_events(
                EventFilter(repository_id=5, date_from=dt.date(2024, 6, 1), date_to=dt.date(2024, 6, 30))
            ),
            rounds,
        ),
        "actions": timed("distinct actions for the filter (loose index scan)", actions, rounds),
        "offset page": timed(
            f"for contrast: deep page by OFFSET (page {head // 100 // 50 * 99})",
            lambda: list(Paginator(AuditEvent.objects.order_by("-seq"), 50).page(head // 100 // 50 * 99).object_list),
            max(1, rounds // 3),
        ),
    }
    if with_verify:
        results.update(time_verification())
    return results


def time_verification() -> dict[str, float]:
    """The full walk (the background run's work), then what /audit/verify/ does per
    request: the quick check from the latest signed checkpoint, with 100 events after it."""
    from django.db import transaction
    from django.test import Client
    from django.test.utils import override_settings

    from releaseboard.audit import checkpoint
    from releaseboard.audit.models import AuditEvent
    from releaseboard.audit.service import record
    from releaseboard.audit.verify import verify, verify_recent

    results: dict[str, float] = {}
    began = time.perf_counter()
    report = verify()
    results["verify"] = (time.perf_counter() - began) * 1000
    print(f"{'verify() of the whole chain (full run)':<58} {results['verify'] / 1000:9.2f} s   ({report.summary})")
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    if not any(c.seq == head for c in checkpoint.read_files()[0]):
        checkpoint.write(created_by="bench")  # the first one walks the whole chain
    with transaction.atomic():
        for n in range(100):
            record("job.started", actor=None, message=f"bench event {n}")
    began = time.perf_counter()
    checkpoint.write(created_by="bench")
    results["checkpoint"] = (time.perf_counter() - began) * 1000
    print(f"{'signed checkpoint, 100 events after the previous one':<58} {results['checkpoint']:9.1f} ms")
    with transaction.atomic():
        for n in range(100):
            record("job.started", actor=None, message=f"bench event {n}")
    results["verify recent"] = timed("quick check: checkpoints + 100 events after the latest", verify_recent, 7)
    from django.contrib.auth.models import Group, User

    from releaseboard.roles import Role

    user, _ = User.objects.get_or_create(username="bench-ops")
    user.groups.add(Group.objects.get_or_create(name=Role.OPS.value)[0])
    client = Client()
    client.force_login(user)
    with override_settings(ALLOWED_HOSTS=["*"], SECURE_SSL_REDIRECT=False):
        response = client.get("/audit/verify/")
        assert response.status_code == 200 and b"The audit log is intact" in response.content, response.status_code
        results["verify page"] = timed(
            "GET /audit/verify/ (quick check + last full run)", lambda: client.get("/audit/verify/"), 7
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "releaseboard-audit-bench")
    parser.add_argument("--database-url", help="a throwaway PostgreSQL database (default: SQLite in --workdir)")
    parser.add_argument("--verify", action="store_true", help="also time verify() over the whole chain")
    parser.add_argument("--json", type=Path, help="write the medians to this file")
    args = parser.parse_args()
    setup(args.workdir, args.database_url)
    fill(args.events)
    results = run(args.rounds, args.verify)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
