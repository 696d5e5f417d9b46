#!/usr/bin/env python3
"""Benchmark: the conflict radar's refresh against the one raw `git merge-tree --stdin` call.

    full         releaseboard.radar.compute.refresh_radar() with an empty cache: read the
                 open branches, one batched merge-tree (scratch object directory), store
                 every pair's result
    raw          git -c core.looseCompression=0 merge-tree --write-tree --stdin -z
                 --name-only --messages over the same pairs: the very command the radar
                 runs, objects to a scratch directory on the same file system
    raw-default  the same without -c core.looseCompression=0 (git's default compression)
    incremental  refresh_radar() after one branch moved: only that branch's pairs merge
    raw-incr     the raw call over the same pairs as the incremental refresh
    cached       refresh_radar() when nothing moved (no git at all)

The repository is the generator's (50 branches: 1,225 branch pairs and 50 against
staging, 1,275 pairs). The radar reads a bench mirror fetched from its remote.git
(`<workdir>/<size>/bench-radar.git`) and keeps its cache in its own SQLite database
(`<workdir>/<size>/bench-radar.sqlite3`); the generated remote is never written to. "One
branch moved" is simulated in the bench mirror: a new commit on top of a branch's head
(same tree), written to the bench mirror and recorded as that branch's head; every round
moves it there and back, and both directions are timed.

Rounds alternate the sides after one warm-up each; medians are reported, with the ratios
full/raw (goal <= 1.5x) and incremental/raw-incr. Always exits 0 once measured.

    .venv/bin/python bench/radar.py            # large: 20000 files, 30000 commits
    .venv/bin/python bench/radar.py --small    # quick: 100 files, 200 commits
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from promotion_path import generate  # type: ignore[import-not-found]  # noqa: E402  (run as a script)

GOAL = 1.5
SIDES = ("full", "raw", "raw-default", "incremental", "raw-incr", "cached")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--workdir",
        default="/tmp/releaseboard-bench",
        help="where the generated repositories live (default: %(default)s)",
    )
    ap.add_argument("--gen", default=None, help="path of another generator to use (default: bench/gen_repo.py)")
    ap.add_argument("--small", action="store_true", help="quick run on a small repository (100 files, 200 commits)")
    ap.add_argument("--rounds", type=int, default=9, help="measured rounds per side (default: %(default)s)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    return ap.parse_args()


def sh(*argv: str, input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    proc = subprocess.run(list(argv), input=input, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout


def setup_django(out: Path) -> None:
    # Its own SQLite file, so the benchmark never touches the development database.
    os.environ["DATABASE_URL"] = f"sqlite:///{out / 'bench-radar.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releaseboard.settings")
    sys.path.insert(0, str(REPO_ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def timed(call: Any) -> Any:
    t0 = time.perf_counter()
    result = call()
    return (time.perf_counter() - t0) * 1000, result


def main() -> None:
    args = parse_args()
    size = "small" if args.small else "large"
    out = Path(args.workdir) / size
    generate(args, out, *((100, 200) if args.small else (20000, 30000)))
    setup_django(out)

    from releaseboard import branching, vcs
    from releaseboard.radar.compute import refresh_radar, wanted_pairs
    from releaseboard.radar.models import PairMerge
    from releaseboard.releases.models import Branch, Repository

    remote = out / "remote.git"
    mirror = vcs.Mirror(out / "bench-radar.git", str(remote), allow_local=True)
    mirror.fetch()
    heads = mirror.heads()
    state_file = out / "bench-state.json"  # promotion_path.py's record of the generated staging
    if state_file.exists():
        heads["staging"] = json.loads(state_file.read_text())["staging"]

    Repository.objects.filter(name="bench").delete()
    repository = Repository.objects.create(name="bench", remote_url=str(remote), test_command="true")
    for name, sha in heads.items():
        kind = branching.classify(repository.names, name)
        if kind is not None:
            Branch.objects.create(repository=repository, name=name, kind=kind.value, head_sha=sha)
    mover = Branch.objects.filter(repository=repository, kind="feature").order_by("name").first()
    assert mover is not None
    original = mover.head_sha
    moved = mirror.commit_tree(
        mirror.tree_of(original),
        [original],
        "bench: one more commit\n",
        author=vcs.Identity("Bench", "bench@example.invalid"),
        committer=vcs.Identity("Bench", "bench@example.invalid"),
        timestamp=1_700_000_000,
    )

    def pairs_input(pairs: list[tuple[str, str]]) -> bytes:
        return "".join(f"{a} {b}\n" for a, b in pairs).encode()

    objects = str((mirror.path / "objects").resolve())
    scratch_root = vcs.radar.default_scratch_root(mirror)

    def raw(pairs: list[tuple[str, str]], compression: tuple[str, ...] = ("-c", "core.looseCompression=0")) -> float:
        scratch = tempfile.mkdtemp(prefix="bench-raw-", dir=scratch_root)
        env = {**os.environ, "GIT_OBJECT_DIRECTORY": scratch, "GIT_ALTERNATE_OBJECT_DIRECTORIES": objects}
        try:
            ms, _ = timed(
                lambda: sh(
                    "git",
                    "-C",
                    str(mirror.path),
                    *compression,
                    "merge-tree",
                    "--write-tree",
                    "--stdin",
                    "-z",
                    "--name-only",
                    "--messages",
                    input=pairs_input(pairs),
                    env=env,
                )
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return ms

    def move(sha: str) -> None:
        Branch.objects.filter(pk=mover.pk).update(head_sha=sha)

    all_pairs = sorted(wanted_pairs(repository))
    print(f"{len(all_pairs)} pairs; moving {mover.name}; scratch objects under {scratch_root}", flush=True)
    samples: dict[str, list[float]] = {side: [] for side in SIDES}
    computed: list[int] = []
    conflicting = 0
    for round_no in range(args.rounds + 1):
        PairMerge.objects.filter(repository=repository).delete()
        ms_full, done = timed(lambda: refresh_radar(repository, mirror))
        assert done.computed == len(all_pairs), done
        conflicting = sum(1 for m in PairMerge.objects.filter(repository=repository) if m.conflicts)
        ms_raw = raw(all_pairs)
        ms_raw_default = raw(all_pairs, ())
        ms_cached, cached = timed(lambda: refresh_radar(repository, mirror))
        assert cached.computed == 0, cached
        incr, raw_incr = [], []
        for sha in (moved, original):  # there and back: each is one branch moving
            move(sha)
            changed = sorted(
                wanted_pairs(repository)
                - set(PairMerge.objects.filter(repository=repository).values_list("low_sha", "high_sha"))
            )
            ms_incr, step = timed(lambda: refresh_radar(repository, mirror))
            computed.append(step.computed)
            incr.append(ms_incr)
            raw_incr.append(raw(changed))
        if round_no == 0:
            continue  # warm-up
        samples["full"].append(ms_full)
        samples["raw"].append(ms_raw)
        samples["raw-default"].append(ms_raw_default)
        samples["cached"].append(ms_cached)
        samples["incremental"] += incr
        samples["raw-incr"] += raw_incr
        print(
            f"round {round_no}: full {ms_full:.0f} ms, raw {ms_raw:.0f} ms, incremental "
            f"{'/'.join(f'{m:.0f}' for m in incr)} ms ({computed[-1]} pairs merged), cached {ms_cached:.1f} ms",
            flush=True,
        )

    # The radar's answer against the generator's expected matrix (only the staging the generator made).
    from releaseboard.radar import selectors

    manifest = json.loads((out / "manifest.json").read_text())
    shown: dict[str, list[str]] = {}
    for row in selectors.matrix(repository).rows:
        for cell in ([row.staging] if row.staging else []) + row.cells:
            if cell.state == selectors.CONFLICT:
                key = " ".join(sorted((row.branch.name, cell.other.name)))
                shown[key] = sorted({c["path"] for c in cell.conflicts})
    expected = {
        " ".join(sorted(key.split(" "))): sorted(files) for key, files in manifest["expected_conflicting_pairs"].items()
    }
    expected.update(
        {
            " ".join(sorted((name, "staging"))): sorted(files)
            for name, files in manifest["expected_conflicts_with_staging"].items()
        }
    )
    matches = shown == expected

    med = {side: statistics.median(values) for side, values in samples.items()}
    ratio, ratio_incr = med["full"] / med["raw"], med["incremental"] / med["raw-incr"]
    print()
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, {sh('git', '--version').decode().strip()}")
    print(f"repository: {size} ({len(all_pairs)} pairs, {conflicting} conflicting), {args.rounds} rounds, medians:")
    print(
        f"  full refresh        {med['full']:8.1f} ms   raw merge-tree --stdin {med['raw']:8.1f} ms   "
        f"ratio {ratio:.2f}x (goal <= {GOAL:.1f}x)"
    )
    print(f"  (raw with git's default loose-object compression: {med['raw-default']:.1f} ms)")
    print(
        f"  incremental refresh {med['incremental']:8.1f} ms   raw, same pairs        {med['raw-incr']:8.1f} ms   "
        f"ratio {ratio_incr:.2f}x; pairs merged again after one branch moved: {sorted(set(computed))}"
    )
    print(f"  matches the generator's expected conflict matrix exactly: {'yes' if matches else 'NO'}")
    print(f"  nothing moved       {med['cached']:8.1f} ms   (no git process)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "medians_ms": med,
                    "samples_ms": samples,
                    "ratio": ratio,
                    "ratio_incremental": ratio_incr,
                    "pairs": len(all_pairs),
                    "recomputed_after_move": sorted(set(computed)),
                    "matches_manifest": matches,
                },
                indent=1,
            )
            + "\n"
        )
    Repository.objects.filter(name="bench").delete()


if __name__ == "__main__":
    main()
