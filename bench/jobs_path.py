"""What users wait for: the real promotion and release jobs against the raw git they need.

Each Releaseboard side is a process (bench/jobs_side.py) with its own var dir, database
and copy of the remote. It registers the repository through the real service (its sync
job imports the open branches), then per round: `request_promotion` -> its test job
(test_command `true`, so the test itself costs ~0) -> `promote` -> its promote job;
then `promote_to_master` -> its release job. Jobs run through
`releaseboard.jobs.execution.run(job_id)`, as a worker runs them (claim, lease,
heartbeat, steps, log, audit, every DB write). The raw side runs the git commands the
same jobs need on its own copy of the remote:

    test job:    fetch, for-each-ref, merge-tree --write-tree, commit-tree
    promote job: fetch, for-each-ref, push --force-with-lease
    release job: fetch, for-each-ref, merge-base --is-ancestor, mktag, push --atomic (master + tag)

Each round promotes the next branch of the generator's clean_features_in_order, so
staging advances, and releases it, on every side; sides take turns (the order rotates
each round); round 0 is a warm-up. After each round one branch is added to every remote
(outside the timing) so the number of open branches stays at --open-branches. The next
round's test job is the first to fetch it, so it also records that branch (its facts, its
radar pairs with every other open branch), unless --sync-new-branches runs a sync job
(untimed) right after, as the periodic sync or a push webhook would.

    .venv/bin/python bench/jobs_path.py --small                      # SQLite + raw, quick
    .venv/bin/python bench/jobs_path.py --database-url postgres://postgres@127.0.0.1:5432/rb_bench_jobs
    .venv/bin/python bench/jobs_path.py --small --compare-open 5,100  # per-job time vs open branches
    .venv/bin/python bench/jobs_path.py --small --celery --database-url ...  # click -> remote moved
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.jobs_report import report  # noqa: E402

FETCH = [
    "fetch",
    "--prune",
    "--no-write-fetch-head",
    "origin",
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
]
IDENTITY = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid"}
EXTRAS = 300  # spare branches made once in the generated remote, to keep the open count


def sh(*argv: str, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(argv), input=input, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def sequence(manifest: dict[str, Any]) -> list[str]:
    """Branches that merge cleanly one after another: the clean ones, greedily skipping
    any that conflicts with one already chosen (the generator lists those pairs)."""
    pairs = {frozenset(k.split(" ")) for k in manifest.get("expected_conflicting_pairs", {})}
    chosen: list[str] = []
    for name in manifest["clean_features_in_order"]:
        if not any(frozenset((name, c)) in pairs for c in chosen):
            chosen.append(name)
    return chosen


def generate(gen: Path, out: Path, files: int, commits: int) -> dict[str, Any]:
    if not ((out / "remote.git" / "HEAD").exists() and (out / "manifest.json").exists()):
        if not gen.exists():
            raise SystemExit(f"generator not found at {gen}; pass --gen PATH")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        print(f"generating {out} ({files} files, {commits} commits) with {gen} ...", flush=True)
        t0 = time.monotonic()
        sh(sys.executable, str(gen), "--out", str(out), "--files", str(files), "--commits", str(commits))
        print(f"generated in {time.monotonic() - t0:.0f}s", flush=True)
    remote = str(out / "remote.git")
    if not sh("git", "--git-dir", remote, "for-each-ref", "refs/bench-extra/").strip():
        # Spare feature branches off staging, each adding one file: fast-import, one process.
        staging = sh("git", "--git-dir", remote, "rev-parse", "refs/heads/staging").strip()
        stream = []
        for i in range(EXTRAS):
            msg = f"Extra work {i}\n".encode()
            body = f"extra {i}\n".encode()
            stream.append(
                f"commit refs/bench-extra/{i:03d}\ncommitter Bench <b@example.invalid> 1700000000 +0000\n"
                f"data {len(msg)}\n".encode()
                + msg
                + f"from {staging}\nM 644 inline bench-extra/extra_{i:03d}.txt\ndata {len(body)}\n".encode()
                + body
                + b"\n"
            )
        sh("git", "--git-dir", remote, "fast-import", "--quiet", input=b"".join(stream))
    return json.loads((out / "manifest.json").read_text())


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the raw side's git processes)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


class Remote:
    """One side's own copy of the generated remote, with --open-branches open branches."""

    def __init__(self, gen_remote: Path, path: Path, manifest: dict[str, Any], open_branches: int) -> None:
        self.path = path
        sh("git", "clone", "-q", "--mirror", str(gen_remote), str(path))
        self.candidates = sequence(manifest)
        others = [b["name"] for b in manifest["branches"] if b["name"] not in self.candidates]
        self.heads = {
            line.split()[1].removeprefix("refs/heads/"): line.split()[0]
            for line in self.git("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/").splitlines()
        }
        self.extras = [
            line.split()[0]
            for line in self.git("for-each-ref", "--format=%(objectname)", "refs/bench-extra/").splitlines()
        ]
        self.next_extra = 0
        wanted = (self.candidates + others)[:open_branches]
        while len(wanted) < open_branches:
            wanted.append(self.extra_name())
        updates = [f"delete refs/heads/{n}\n" for n in self.heads if n not in wanted and n not in ("master", "staging")]
        for name in wanted:
            if name.startswith("feature/bench-extra-"):
                updates.append(f"create refs/heads/{name} {self.extras[int(name.rsplit('-', 1)[1])]}\n")
        self.git("update-ref", "--stdin", input="".join(updates).encode())
        self.present = set(wanted)

    def git(self, *args: str, input: bytes | None = None) -> str:
        return sh("git", "--git-dir", str(self.path), *args, input=input)

    def extra_name(self) -> str:
        name = f"feature/bench-extra-{self.next_extra:03d}"
        self.next_extra += 1
        return name

    def replenish(self, k: int) -> None:
        """After round k one branch is promoted (no longer open): push one more, the
        candidate of round k+2 if it is not there yet, else a spare one."""
        nxt = self.candidates[k + 2] if k + 2 < len(self.candidates) else None
        if nxt and nxt not in self.present:
            self.git("update-ref", f"refs/heads/{nxt}", self.heads[nxt])
            self.present.add(nxt)
        else:
            name = self.extra_name()
            self.git("update-ref", f"refs/heads/{name}", self.extras[self.next_extra - 1])
            self.present.add(name)


class RawSide:
    kind = "raw"

    def __init__(self, name: str, remote: Remote, workdir: Path) -> None:
        self.name, self.remote, self.path = name, remote, workdir / "raw.git"
        sh("git", "init", "-q", "--bare", str(self.path))
        self.git("config", "remote.origin.url", str(remote.path))
        self.git(*FETCH)
        self.worktree = workdir / "raw-worktree"
        self.git("worktree", "add", "-q", "--detach", str(self.worktree), "refs/heads/staging")
        self.n = 0

    def git(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
        return sh("git", "-C", str(self.path), *args, input=input, env=env)

    def heads(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/")
        return {ref.removeprefix("refs/heads/"): sha for sha, ref in (line.split(" ", 1) for line in out.splitlines())}

    def promote(self, branch: str) -> dict[str, Any]:
        c = time.perf_counter
        self.n += 1
        u0 = children_cpu()
        t0 = c()
        self.git(*FETCH)
        heads = self.heads()
        staging, tip = heads["staging"], heads[branch]
        tree = self.git("merge-tree", "--write-tree", staging, tip).split("\n", 1)[0]
        ts = str(int(time.time()))
        env = {**os.environ, **IDENTITY, "GIT_AUTHOR_DATE": ts, "GIT_COMMITTER_DATE": ts}
        env.update(GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
        msg = f"Promote {branch} to staging\n\nReleaseboard-Promotion: raw-{self.n}\n".encode()
        merge = self.git("commit-tree", "-p", staging, "-p", tip, "-F", "-", tree, input=msg, env=env).strip()
        t1 = c()
        u1 = children_cpu()
        # What the test job needs before it runs the test command (not in the raw total).
        sh("git", "-C", str(self.worktree), "checkout", "-q", "--detach", "-f", merge)
        sh("git", "-C", str(self.worktree), "clean", "-q", "-ffdx")
        t2 = c()
        u2 = children_cpu()
        self.git(*FETCH)
        now = self.heads()["staging"]
        self.git("push", "-q", f"--force-with-lease=refs/heads/staging:{now}", "origin", f"{merge}:refs/heads/staging")
        t3 = c()
        u3 = children_cpu()
        return {
            "test": {"ms": (t1 - t0) * 1000, "cpu_ms": (u1 - u0) * 1000},
            "checkout_ms": (t2 - t1) * 1000,
            "checkout_cpu_ms": (u2 - u1) * 1000,
            "push": {"ms": (t3 - t2) * 1000, "cpu_ms": (u3 - u2) * 1000},
        }

    def release(self) -> dict[str, Any]:
        c = time.perf_counter
        u0 = children_cpu()
        t0 = c()
        self.git(*FETCH)
        heads = self.heads()
        master, staging = heads["master"], heads["staging"]
        self.git("merge-base", "--is-ancestor", master, staging)
        name = f"v900.{self.n}.0"
        tagger = f"tagger Bench <b@example.invalid> {int(time.time())} +0000"
        body = f"object {staging}\ntype commit\ntag {name}\n{tagger}\n\nRelease {name}\n"
        tag = self.git("mktag", input=body.encode()).strip()
        self.git(
            "push", "-q", "--atomic", f"--force-with-lease=refs/heads/master:{master}", "origin",
            f"{staging}:refs/heads/master", f"{tag}:refs/tags/{name}",
        )  # fmt: skip
        return {"job": {"ms": (c() - t0) * 1000, "cpu_ms": (children_cpu() - u0) * 1000}}

    def close(self) -> None:
        pass


class ReleaseboardSide:
    kind = "releaseboard"

    def __init__(self, name: str, remote: Remote, workdir: Path, database_url: str = "", broker: str = "") -> None:
        self.name, self.remote = name, remote
        argv = [
            sys.executable,
            str(ROOT / "bench" / "jobs_side.py"),
            "--dir",
            str(workdir),
            "--remote",
            str(remote.path),
        ]
        if database_url:
            argv += ["--database-url", database_url]
        if broker:
            argv += ["--broker-url", broker, "--broker-prefix", f"rbbench-{uuid.uuid4().hex[:8]}:"]
        self.log_path = workdir / "side.log"
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.log_path, "w"),  # noqa: SIM115 (the side's log, for its lifetime)
            text=True,
        )

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise SystemExit(f"side {self.name} stopped:\n{self.log_path.read_text()[-3000:]}")

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        return self.answer()

    def promote(self, branch: str) -> dict[str, Any]:
        return self.call("promote", branch=branch)

    def release(self) -> dict[str, Any]:
        return self.call("release")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(SystemExit, BrokenPipeError):
                self.call("quit")
            self.proc.wait(timeout=60)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--gen", default=str(ROOT / "bench" / "gen_repo.py"), help="repository generator (default: %(default)s)"
    )
    ap.add_argument("--workdir", default="/tmp/releaseboard-jobs-bench")
    ap.add_argument("--small", action="store_true", help="100 files / 200 commits instead of 20,000 / 30,000")
    ap.add_argument("--rounds", type=int, default=10, help="measured rounds per side (default: %(default)s)")
    ap.add_argument("--open-branches", type=int, default=50)
    ap.add_argument(
        "--database-url", default="", help="also a PostgreSQL side on this throwaway DB (dropped and created)"
    )
    ap.add_argument("--compare-open", default="", help="e.g. 5,100: two SQLite sides with that many open branches")
    ap.add_argument("--celery", action="store_true", help="click -> remote moved through a real Celery worker on Redis")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--profile", action="store_true", help="a promotion and a release under cProfile on the first side")
    ap.add_argument(
        "--sync-new-branches",
        action="store_true",
        help="record each round's added branch with a sync job (untimed) before the next round",
    )
    ap.add_argument("--json", default="", help="also write every round's figures here")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    size, files, commits = ("small", 100, 200) if args.small else ("large", 20000, 30000)
    base = Path(args.workdir).resolve()
    manifest = generate(Path(args.gen), base / f"gen-{size}", files, commits)
    gen_remote = base / f"gen-{size}" / "remote.git"
    candidates = sequence(manifest)
    need = args.rounds + 1 + (1 if args.profile else 0)
    if need + 2 > len(candidates):
        raise SystemExit(f"only {len(candidates)} branches merge one after another; use --rounds {len(candidates) - 4}")
    run = base / f"run-{size}"
    shutil.rmtree(run, ignore_errors=True)

    specs: list[tuple[str, str, int, str]] = []  # name, kind, open branches, database
    if args.celery:
        specs.append(("celery+redis", "rb", args.open_branches, args.database_url))
    elif args.compare_open:
        for n in (int(x) for x in args.compare_open.split(",")):
            specs.append((f"sqlite, {n} open", "rb", n, ""))
    else:
        specs.append(("sqlite", "rb", args.open_branches, ""))
        if args.database_url:
            specs.append(("postgresql", "rb", args.open_branches, args.database_url))
        specs.append(("raw git", "raw", args.open_branches, ""))
    sides: list[Any] = []
    t0 = time.monotonic()
    try:
        for i, (name, kind, n_open, db) in enumerate(specs):
            wd = run / f"side{i}"
            wd.mkdir(parents=True)
            remote = Remote(gen_remote, wd / "remote.git", manifest, n_open)
            if kind == "raw":
                sides.append(RawSide(name, remote, wd))
            else:
                sides.append(ReleaseboardSide(name, remote, wd, db, args.redis_url if args.celery else ""))
        ready = {s.name: s.answer() for s in sides if s.kind == "releaseboard"}  # the sync jobs, in parallel
        print(f"set up in {time.monotonic() - t0:.0f}s: {ready}", flush=True)
        results: dict[str, dict[str, list[Any]]] = {s.name: {"promote": [], "release": []} for s in sides}
        for k in range(args.rounds + 1):
            order = sides[k % len(sides) :] + sides[: k % len(sides)]
            for s in order:
                r = s.call("click_promote", branch=candidates[k]) if args.celery else s.promote(candidates[k])
                if k:
                    results[s.name]["promote"].append(r)
            for s in order:
                r = s.call("click_release") if args.celery else s.release()
                if k:
                    results[s.name]["release"].append(r)
            for s in sides:
                s.remote.replenish(k)
                if args.sync_new_branches and s.kind == "releaseboard":
                    s.call("sync")
            print(f"round {k} done ({time.monotonic() - t0:.0f}s)", flush=True)
        profile = None
        if args.profile:
            k = args.rounds + 1
            profile = sides[0].call("profile", branch=candidates[k])
    finally:
        for s in sides:
            s.close()
    report(args, size, manifest, sides, results, profile)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "profile": profile}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
