#!/usr/bin/env python3
"""Benchmark: Releaseboard's promotion path against the raw git commands it stands for.

The vcs calls a promote job makes (test command excluded), on a persistent mirror:

    fetch    Mirror.fetch()                      git fetch --prune --no-write-fetch-head origin
                                                     +refs/heads/*:refs/heads/* +refs/tags/*:refs/tags/*
    heads    Mirror.heads()                      git for-each-ref --format='%(objectname) %(refname)' refs/heads/
    merge    Mirror.merge(staging, branch)       git merge-tree --write-tree <staging> <branch>
    commit   Mirror.commit_tree(tree, [s, b])    git commit-tree -p <staging> -p <branch> -F - <tree>
    push     Mirror.push([RefUpdate(staging)])   git push --force-with-lease=refs/heads/staging:<old>
                                                     origin <new>:refs/heads/staging

"releaseboard" runs the first column through releaseboard.vcs on one persistent bare
mirror; "raw" runs the second column with subprocess in a second persistent bare clone.
Both push to the same remote (the generator's remote.git). After every round the
remote's staging is put back to its original SHA with `git update-ref` run directly in
remote.git (outside the timed region), so every round starts from the same state. Each
round makes a new merge commit (its timestamp differs), as a real promotion would.

Runs are interleaved (releaseboard, raw, releaseboard, raw, ...) after one warm-up
round each; the medians per step and of the totals are reported, and the ratio
releaseboard/raw of the total medians (goal: <= 1.20x). Always exits 0 once measured.

Run from the repository root:

    .venv/bin/python bench/promotion_path.py            # large repo (20000 files, 30000 commits)
    .venv/bin/python bench/promotion_path.py --small    # quick: 100 files, 200 commits
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STEPS = ("fetch", "heads", "merge", "commit", "push")
RECORD = "record"  # --with-record: what refresh()/record_heads() also asks of the mirror
GOAL = 1.20
IDENTITY_NAME, IDENTITY_EMAIL = "Releaseboard Bench", "bench@releaseboard.invalid"
MESSAGE = "Merge {branch} into staging\n\nReleaseboard-Promotion: bench-{n}\n"
STAGING = "refs/heads/staging"
FETCH_ARGS = [
    "fetch",
    "--prune",
    "--no-write-fetch-head",
    "origin",
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--workdir",
        default="/tmp/releaseboard-bench",
        help="where the generated repositories and the two clones live (default: %(default)s)",
    )
    ap.add_argument("--gen", default=None, help="path of another generator to use (default: bench/gen_repo.py)")
    ap.add_argument("--small", action="store_true", help="quick run on a small repository (100 files, 200 commits)")
    ap.add_argument("--rounds", type=int, default=15, help="measured rounds per side (default: %(default)s)")
    ap.add_argument("--branch", default=None, help="branch to merge (default: first one that merges cleanly)")
    ap.add_argument(
        "--import-root",
        default=None,
        help="import releaseboard.vcs from this directory instead of the repository "
        "(to measure a modified copy of the vcs module)",
    )
    ap.add_argument(
        "--with-record",
        action="store_true",
        help="also time the mirror calls refresh() makes for record_heads() (is_ancestor(master, "
        "staging), commits_between(master, staging, 200), tags()) against merge-base "
        "--is-ancestor, git log and for-each-ref; reported as an extra step, in the total",
    )
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    return ap.parse_args()


# -- setup ---------------------------------------------------------------------------------


def sh(*argv: str, cwd: Path | None = None, input: bytes | None = None, env: dict | None = None) -> str:
    proc = subprocess.run(list(argv), cwd=cwd, input=input, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def generate(args: argparse.Namespace, out: Path, files: int, commits: int) -> None:
    if (out / "remote.git" / "HEAD").exists() and (out / "manifest.json").exists():
        print(f"reusing {out}/remote.git")
        return
    if (out / "remote.git").exists():
        raise SystemExit(f"{out}/remote.git exists but has no manifest.json (an interrupted generation?); remove {out}")
    gen = Path(args.gen) if args.gen else Path(__file__).resolve().parent / "gen_repo.py"
    if not gen.exists():
        raise SystemExit(f"generator not found at {gen}; pass --gen PATH")
    print(f"generating {out} ({files} files, {commits} commits) with {gen} ...", flush=True)
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, str(gen), "--out", str(out), "--files", str(files), "--commits", str(commits)], check=True
    )
    print(f"generated in {time.monotonic() - t0:.0f}s", flush=True)


def original_staging(out: Path, remote: Path) -> str:
    """The remote's staging SHA as generated, remembered across runs (a crashed run may
    have left the remote's staging at a merge commit)."""
    state_file = out / "bench-state.json"
    if state_file.exists():
        return json.loads(state_file.read_text())["staging"]
    sha = sh("git", "-C", str(remote), "rev-parse", "--verify", STAGING).strip()
    state_file.write_text(json.dumps({"staging": sha}) + "\n")
    return sha


def reset_remote(remote: Path, staging: str) -> None:
    sh("git", "-C", str(remote), "update-ref", STAGING, staging)


def tidy(repo: Path, limit: int = 2000) -> None:
    """Drop the loose merge commits earlier runs left behind, once there are many, so they
    never reach gc.auto (6700) and start an automatic gc in the middle of a raw fetch."""
    counts = dict(line.split(": ", 1) for line in sh("git", "-C", str(repo), "count-objects", "-v").splitlines())
    if int(counts.get("count", "0")) > limit:
        print(f"pruning loose objects in {repo.name} ...", flush=True)
        sh("git", "-C", str(repo), "prune", "--expire=now")


def raw_env() -> dict[str, str]:
    # The identity and date a commit needs; everything else is the caller's environment.
    return dict(os.environ)


# -- the two sides ---------------------------------------------------------------------------


class ReleaseboardSide:
    name = "releaseboard"

    def __init__(self, vcs, path: Path, remote: Path, record: bool = False) -> None:
        self.vcs = vcs
        self.record = record
        self.mirror = vcs.Mirror(path, str(remote), allow_local=True)
        self.identity = vcs.Identity(IDENTITY_NAME, IDENTITY_EMAIL)

    def setup(self) -> None:
        self.mirror.fetch()

    def find_clean_branch(self, candidates: list[str]) -> str | None:
        heads = self.mirror.heads()
        for name in candidates:
            if (
                name in heads
                and not self.mirror.is_ancestor(heads[name], heads["staging"])
                and self.mirror.merge(heads["staging"], heads[name]).clean
            ):
                return name
        return None

    def round(self, branch: str, n: int, timestamp: int) -> tuple[dict[str, float], str, str]:
        t: dict[str, float] = {}
        c = time.perf_counter
        t0 = c()
        self.mirror.fetch()
        t1 = c()
        heads = self.mirror.heads()
        staging, branch_sha = heads["staging"], heads[branch]
        t2 = c()
        t["heads"] = t2 - t1
        if self.record:
            self.mirror.is_ancestor(heads["master"], staging)
            ahead = self.mirror.commits_between(heads["master"], staging, limit=200)
            self.mirror.tags()
            assert ahead and ahead[0].sha == staging
            t.update(record=c() - t2)
            t2 = c()
        merge = self.mirror.merge(staging, branch_sha)
        t3 = c()
        if not merge.clean:
            raise SystemExit(f"{branch} no longer merges cleanly: {merge.conflicted_paths}")
        merge_sha = self.mirror.commit_tree(
            merge.tree,
            [staging, branch_sha],
            MESSAGE.format(branch=branch, n=n),
            author=self.identity,
            committer=self.identity,
            timestamp=timestamp,
        )
        t4 = c()
        self.mirror.push([self.vcs.RefUpdate(STAGING, merge_sha, staging)])
        t5 = c()
        t.update(fetch=t1 - t0, merge=t3 - t2, commit=t4 - t3, push=t5 - t4)
        return t, staging, merge_sha


class RawSide:
    name = "raw"

    def __init__(self, path: Path, remote: Path, record: bool = False) -> None:
        self.record = record
        self.path = path
        self.remote = remote
        self.env = raw_env()

    def git(self, *args: str, input: bytes | None = None, env: dict | None = None) -> str:
        proc = subprocess.run(
            ["git", "-C", str(self.path), *args], input=input, env=env or self.env, capture_output=True, check=False
        )
        if proc.returncode != 0:
            raise SystemExit(f"raw git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode()

    def setup(self) -> None:
        if not (self.path / "HEAD").exists():
            sh("git", "init", "-q", "--bare", str(self.path))
            # Only the URL, as Releaseboard's mirror has: no configured fetch refspec, so a
            # fetch does not also update refs/remotes/origin/*.
            self.git("config", "remote.origin.url", str(self.remote))
        self.git(*FETCH_ARGS)

    def round(self, branch: str, n: int, timestamp: int) -> tuple[dict[str, float], str, str]:
        t: dict[str, float] = {}
        c = time.perf_counter
        t0 = c()
        self.git(*FETCH_ARGS)
        t1 = c()
        heads = {}
        for line in self.git("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/").splitlines():
            sha, _, ref = line.partition(" ")
            heads[ref.removeprefix("refs/heads/")] = sha
        staging, branch_sha = heads["staging"], heads[branch]
        t2 = c()
        t["heads"] = t2 - t1
        if self.record:
            subprocess.run(
                ["git", "-C", str(self.path), "merge-base", "--is-ancestor", heads["master"], staging],
                env=self.env,
                check=False,
            )
            log = self.git(
                "log",
                "--max-count=200",
                "-z",
                "--format=%H%x1f%s%x1f%an%x1f%ae%x1f%at%x1f%(trailers:unfold,separator=%x1e)",
                f"{heads['master']}..{staging}",
            )
            ahead = [entry.split("\x1f") for entry in log.split("\0") if entry]
            self.git("for-each-ref", "--format=%(refname)", "refs/tags/")
            assert ahead and ahead[0][0] == staging
            t.update(record=c() - t2)
            t2 = c()
        proc = subprocess.run(
            ["git", "-C", str(self.path), "merge-tree", "--write-tree", staging, branch_sha],
            env=self.env,
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"raw merge-tree: {branch} does not merge cleanly")
        tree = proc.stdout.decode().split("\n", 1)[0].strip()
        t3 = c()
        env = dict(self.env)
        env.update(
            GIT_AUTHOR_NAME=IDENTITY_NAME,
            GIT_AUTHOR_EMAIL=IDENTITY_EMAIL,
            GIT_AUTHOR_DATE=f"{timestamp} +0000",
            GIT_COMMITTER_NAME=IDENTITY_NAME,
            GIT_COMMITTER_EMAIL=IDENTITY_EMAIL,
            GIT_COMMITTER_DATE=f"{timestamp} +0000",
        )
        merge_sha = self.git(
            "commit-tree",
            "-p",
            staging,
            "-p",
            branch_sha,
            "-F",
            "-",
            tree,
            input=MESSAGE.format(branch=branch, n=n).encode(),
            env=env,
        ).strip()
        t4 = c()
        self.git("push", f"--force-with-lease={STAGING}:{staging}", "origin", f"{merge_sha}:{STAGING}")
        t5 = c()
        t.update(fetch=t1 - t0, merge=t3 - t2, commit=t4 - t3, push=t5 - t4)
        return t, staging, merge_sha


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    sys.path.insert(0, str(Path(args.import_root).resolve() if args.import_root else REPO_ROOT))
    t0 = time.perf_counter()
    from releaseboard import vcs  # noqa: E402  (the package __init__ also loads Celery/Django)

    import_ms = (time.perf_counter() - t0) * 1000

    size, files, commits = ("small", 100, 200) if args.small else ("large", 20000, 30000)
    out = Path(args.workdir).resolve() / size
    out.mkdir(parents=True, exist_ok=True)
    generate(args, out, files, commits)
    remote = out / "remote.git"
    staging0 = original_staging(out, remote)
    reset_remote(remote, staging0)

    rb = ReleaseboardSide(vcs, out / "bench-releaseboard.git", remote, args.with_record)
    raw = RawSide(out / "bench-raw.git", remote, args.with_record)
    print("preparing the persistent clones ...", flush=True)
    for repo in (remote, rb.mirror.path, raw.path):
        if (repo / "HEAD").exists():
            tidy(repo)
    rb.setup()
    raw.setup()

    manifest = json.loads((out / "manifest.json").read_text())
    if args.branch:
        candidates = [args.branch]
    else:
        candidates = list(manifest.get("clean_features_in_order", []))
        candidates += [b["name"] for b in manifest.get("branches", []) if b["name"] not in candidates]
    branch = rb.find_clean_branch(candidates)
    if branch is None:
        raise SystemExit("no branch merges cleanly with staging")
    print(f"branch: {branch} -> staging {staging0[:10]}", flush=True)

    results: dict[str, list[dict[str, float]]] = {"releaseboard": [], "raw": []}
    base_ts = 1_700_000_000 + int(time.time()) % 1_000_000 * 100  # a new merge commit every round
    n = 0
    try:
        for rnd in range(args.rounds + 1):  # round 0 is the warm-up
            for side in (rb, raw):
                n += 1
                timings, old, new = side.round(branch, n, base_ts + n)
                if old != staging0:
                    raise SystemExit(f"{side.name}: staging was {old}, expected {staging0}")
                if sh("git", "-C", str(remote), "rev-parse", STAGING).strip() != new:
                    raise SystemExit(f"{side.name}: the push did not land on the remote")
                reset_remote(remote, staging0)
                if rnd > 0:
                    results[side.name].append(timings)
    finally:
        reset_remote(remote, staging0)

    steps = (STEPS[0], STEPS[1], RECORD, *STEPS[2:]) if args.with_record else STEPS

    def medians(rows: list[dict[str, float]]) -> dict[str, float]:
        m = {s: statistics.median(r[s] for r in rows) * 1000 for s in steps}
        m["total"] = statistics.median(sum(r[s] for s in steps) for r in rows) * 1000
        return m

    med = {k: medians(v) for k, v in results.items()}
    git_version = sh("git", "--version").strip()
    print()
    print(
        f"repository: {size} ({files} files, {manifest.get('master_commits', commits)} commits on master), "
        f"{args.rounds} rounds + 1 warm-up each, interleaved"
        + (", with the record_heads() calls" if args.with_record else "")
    )
    print(
        f"machine: nproc={os.cpu_count()}, {git_version}, Python {platform.python_version()}; "
        f"import releaseboard.vcs: {import_ms:.0f} ms (once per process, not timed below)"
    )
    print()
    print(f"{'step (median ms)':<18}{'releaseboard':>14}{'raw git':>10}{'ratio':>8}")
    for s in (*steps, "total"):
        a, b = med["releaseboard"][s], med["raw"][s]
        print(f"{s:<18}{a:>14.1f}{b:>10.1f}{a / b if b else float('nan'):>7.2f}x")
    ratio = med["releaseboard"]["total"] / med["raw"]["total"]
    print()
    print(f"ratio: {ratio:.2f}x (goal <= {GOAL:.2f}x){'' if ratio <= GOAL else '  ABOVE GOAL'}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "size": size,
                    "files": files,
                    "commits": commits,
                    "rounds": args.rounds,
                    "branch": branch,
                    "with_record": args.with_record,
                    "import_root": args.import_root,
                    "nproc": os.cpu_count(),
                    "git": git_version,
                    "medians_ms": med,
                    "ratio": ratio,
                    "raw_rounds": results,
                },
                indent=1,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
