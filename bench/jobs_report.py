"""The printed report of bench/jobs_path.py: medians per side, counts, ratios, profile."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
from typing import Any

GOAL_RATIO, GOAL_OPEN = 1.5, 1.2


def sh(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout


def med(rows: list[dict[str, Any]], *path: str) -> float:
    vals: list[float] = []
    for row in rows:
        value: Any = row
        for p in path:
            value = value[p]
        vals.append(float(value))
    return statistics.median(vals)


def report(
    args: argparse.Namespace, size: str, manifest: dict[str, Any], sides: list[Any], results: Any, profile: Any
) -> None:
    load = os.getloadavg()
    print()
    print(
        f"repository: {size} ({manifest['files']} files, {manifest['master_commits']} commits on master), "
        f"{args.rounds} rounds + 1 warm-up, sides interleaved; nproc={os.cpu_count()}, "
        f"{sh('git', '--version').strip()}, Python {platform.python_version()}, "
        f"load average {load[0]:.1f}/{load[1]:.1f}"
    )
    if args.celery:
        r = results[sides[0].name]
        print(f"click 'request promotion' -> test passed: median {med(r['promote'], 'tested_ms'):.0f} ms")
        print(f"click 'promote' -> remote staging moved: median {med(r['promote'], 'moved_ms'):.0f} ms")
        print(f"click 'promote to master' -> remote master moved: median {med(r['release'], 'moved_ms'):.0f} ms")
        return
    print(f"\n{'median ms':<22}" + "".join(f"{s.name:>18}" for s in sides))
    rows = [
        ("test job", ("promote", "test", "ms")),
        ("promote job", ("promote", "push", "ms")),
        ("release job", ("release", "job", "ms")),
    ]
    for label, (what, *path) in rows:
        print(f"{label:<22}" + "".join(f"{med(results[s.name][what], *path):>18.1f}" for s in sides))
    promo = {
        s.name: statistics.median(r["test"]["ms"] + r["push"]["ms"] for r in results[s.name]["promote"]) for s in sides
    }
    print(f"{'promotion (test+push)':<22}" + "".join(f"{promo[s.name]:>18.1f}" for s in sides))
    rbs = [s for s in sides if s.kind == "releaseboard"]
    # Until what the user waits for is committed (the raw side has nothing after its push).
    landed = {
        s.name: (
            statistics.median(r["test"]["landed_ms"] + r["push"]["landed_ms"] for r in results[s.name]["promote"]),
            med(results[s.name]["release"], "job", "landed_ms"),
        )
        for s in rbs
    }
    for label, i in (("promotion, landed", 0), ("release, landed", 1)):
        print(f"{label:<22}" + "".join(f"{landed[s.name][i]:>18.1f}" for s in rbs))
    cpu = {
        s.name: statistics.median(r["test"]["cpu_ms"] + r["push"]["cpu_ms"] for r in results[s.name]["promote"])
        for s in sides
    }
    print(f"{'CPU ms, promotion':<22}" + "".join(f"{cpu[s.name]:>18.1f}" for s in sides))
    print(
        f"{'CPU ms, release':<22}"
        + "".join(f"{med(results[s.name]['release'], 'job', 'cpu_ms'):>18.1f}" for s in sides)
    )
    for label, key in (("git processes", "git"), ("SQL queries", "queries")):
        for job, (what, sub) in (
            ("test", ("promote", "test")),
            ("promote", ("promote", "push")),
            ("release", ("release", "job")),
        ):
            print(f"{label + ' / ' + job:<22}" + "".join(f"{med(results[s.name][what], sub, key):>18.0f}" for s in rbs))
    calls = [med(results[s.name]["promote"], "request_ms") + med(results[s.name]["promote"], "promote_ms") for s in rbs]
    print(f"{'service calls (ms)':<22}" + "".join(f"{c:>18.1f}" for c in calls))
    raw = next((s for s in sides if s.kind == "raw"), None)
    if raw is not None:
        rel_raw = med(results[raw.name]["release"], "job", "ms")
        checkout = med(results[raw.name]["promote"], "checkout_ms")
        print(f"\nraw worktree checkout of the merge (the test job does one; not in the raw total): {checkout:.1f} ms")
        for s in rbs:
            pr = promo[s.name] / promo[raw.name]
            pc = promo[s.name] / (promo[raw.name] + checkout)
            rr = med(results[s.name]["release"], "job", "ms") / rel_raw
            print(
                f"{s.name}: promotion {pr:.2f}x raw ({pc:.2f}x raw+checkout), release {rr:.2f}x raw "
                f"(goal <= {GOAL_RATIO}x){'' if max(pr, rr) <= GOAL_RATIO else '  ABOVE GOAL'}"
            )
            lp, lr = landed[s.name]
            print(
                f"{s.name}: until landed (promotion marked promoted, release marked released), promotion "
                f"{lp / promo[raw.name]:.2f}x raw ({lp / (promo[raw.name] + checkout):.2f}x raw+checkout), "
                f"release {lr / rel_raw:.2f}x raw"
            )
            cr = med(results[s.name]["release"], "job", "cpu_ms") / med(results[raw.name]["release"], "job", "cpu_ms")
            print(f"{s.name}: in CPU time, promotion {cpu[s.name] / cpu[raw.name]:.2f}x raw, release {cr:.2f}x raw")
    if args.compare_open and len(rbs) == 2:
        a, b = rbs
        for job, what, sub in (
            ("test", "promote", "test"),
            ("promote", "promote", "push"),
            ("release", "release", "job"),
        ):
            ratio = med(results[b.name][what], sub, "ms") / med(results[a.name][what], sub, "ms")
            cratio = med(results[b.name][what], sub, "cpu_ms") / med(results[a.name][what], sub, "cpu_ms")
            print(f"{job} job: {b.name} / {a.name} = {ratio:.2f}x wall, {cratio:.2f}x CPU (goal <= {GOAL_OPEN}x)")
        total = [
            sum(
                med(results[s.name][w], sub, "ms")
                for w, sub in (("promote", "test"), ("promote", "push"), ("release", "job"))
            )
            for s in rbs
        ]
        print(f"all three jobs: {total[1] / total[0]:.2f}x{'' if total[1] / total[0] <= GOAL_OPEN else '  ABOVE GOAL'}")
    if profile:
        print("\ngit processes by subcommand, profiled promotion and release:")
        for what, job in (("promotion", "test"), ("promotion", "push"), ("release", "job")):
            got = profile[what][job]
            print(f"  {job}: {got['git']} ({got['git_by']}), {got['queries']} SQL queries")
        for what in ("promotion", "release"):
            print(f"\n{what} (stats in {what}.pstats beside the side's database):")
            print(profile[what]["profile"])
