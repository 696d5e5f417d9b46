#!/usr/bin/env python3
"""Benchmark: the branch facts (behind/ahead, dependencies, missing hotfixes) of every open
branch, as each job computes them after its fetch, with 5, 50 and 100 open branches.

    per-branch   intelligence.analyse_per_branch(): the old way, `git rev-list --left-right
                 --count` and `git rev-list` per branch, `git merge-base --is-ancestor` per
                 landed hotfix × branch
    three        intelligence.analyse(): one `rev-list --parents` of what the open branches
                 have and staging lacks, one `merge-base --octopus` of where they meet
                 staging, one `rev-list --parents` of staging's commits after that base;
                 reachability in Python
    raw          those three git commands alone, run with subprocess (the git floor of
                 three)

The repository is generated here with `git fast-import` (no other input): a staging of
--commits linear commits (empty trees: the facts read history only), a landed hotfix
merged 50 commits before staging's head, and N branches forked at staging commits up to
1,000 back, each 1 to 4 commits ahead; every fifth branch also merges the one before it
(a dependency). Branch and promotion rows are in a SQLite database of its own. Git
processes are counted at GitPython's Popen, which both run_git and the object reader use.
Rounds alternate the sides after one warm-up each; medians in ms.

    .venv/bin/python bench/branch_facts.py                  # 30,000 staging commits
    .venv/bin/python bench/branch_facts.py --commits 2000   # quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZES = (5, 50, 100)


def generate(path: Path, commits: int, branches: int) -> dict[str, str]:
    """The bare repository at `path`; returns {branch name: head} (and "staging")."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    lines: list[str] = []
    clock = 1_700_000_000

    def commit(ref: str, mark: int, parents: list[int], message: str) -> None:
        nonlocal clock
        clock += 60
        lines.extend([f"commit {ref}", f"mark :{mark}", f"committer Dev <dev@example.com> {clock} +0000"])
        lines.extend([f"data {len(message)}", message])
        if parents:
            lines.append(f"from :{parents[0]}")
            lines.extend(f"merge :{p}" for p in parents[1:])
        lines.append("")

    hotfix_at = commits - 50
    hotfix_mark = 10 * commits
    for i in range(1, commits + 1):
        if i == hotfix_at:
            commit("refs/heads/hotfix/landed", hotfix_mark, [i - 1 - 100], "hotfix")
            commit("refs/heads/staging", i, [i - 1, hotfix_mark], f"staging {i}")
        else:
            commit("refs/heads/staging", i, [i - 1] if i > 1 else [], f"staging {i}")
    mark = 11 * commits
    for b in range(branches):
        fork = commits - (b * 37) % min(1000, commits - 1)
        previous = mark
        for k in range(1 + b % 4):
            mark += 1
            parents = [fork if k == 0 else mark - 1]
            if b % 5 == 4 and k == 0:
                parents.append(previous)  # merges the branch before it
            commit(f"refs/heads/feature/b{b}", mark, parents, f"branch {b} commit {k}")
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet"], input="\n".join(lines).encode(), check=True)
    out = subprocess.run(
        ["git", "-C", str(path), "for-each-ref", "--format=%(refname:lstrip=2) %(objectname)", "refs/heads/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split() for line in out.splitlines())


def boundaries(path: Path, tips: list[str], staging: str) -> list[str]:
    """Where the branches meet staging: the parents of their unmerged commits that staging
    has, and the heads staging has (the input of the raw merge-base)."""
    out = subprocess.run(
        ["git", "-C", str(path), "rev-list", "--parents", *tips, f"^{staging}"], capture_output=True, text=True
    ).stdout
    graph = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    found = {p for parents in graph.values() for p in parents if p not in graph}
    return sorted(found | {t for t in tips if t not in graph})


def setup_django(workdir: Path) -> None:
    # Its own SQLite file, so the benchmark never touches the development database.
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench-branch-facts.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releaseboard.settings")
    sys.path.insert(0, str(REPO_ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def rows(name: str, path: Path, heads: dict[str, str]) -> Any:
    from django.utils import timezone

    from releaseboard.releases.models import Branch, BranchState, Promotion, PromotionState, Repository

    repository = Repository.objects.create(name=name, remote_url=str(path), test_command="true")
    for branch in heads:
        if branch != "staging":
            kind = "hotfix" if branch.startswith("hotfix/") else "feature"
            Branch.objects.create(repository=repository, name=branch, kind=kind, state=BranchState.ACTIVE)
    Promotion.objects.create(
        repository=repository,
        branch=Branch.objects.get(repository=repository, name="hotfix/landed"),
        title="landed",
        state=PromotionState.PROMOTED,
        branch_sha=heads["hotfix/landed"],
        promoted_at=timezone.now(),
    )
    return repository, list(Branch.objects.filter(repository=repository))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=30_000, help="staging's commits (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=7, help="measured rounds per side (default: %(default)s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="releaseboard-bench-facts-") as tmp:
        workdir = Path(tmp)
        setup_django(workdir)
        import git as gitpython

        started = [0]
        real = gitpython.cmd.safer_popen

        def counting(*a: Any, **k: Any) -> Any:
            started[0] += 1
            return real(*a, **k)

        gitpython.cmd.safer_popen = counting
        print(f"staging: {args.commits} commits; git {subprocess.getoutput('git --version').split()[-1]}")
        print("| open branches | side | git processes | median ms |")
        print("|---:|---|---:|---:|")
        for size in SIZES:
            for side, (count, ms) in measure(workdir, size, args, started).items():
                print(f"| {size} | {side} | {count} | {ms:.1f} |")


def measure(workdir: Path, size: int, args: argparse.Namespace, started: list[int]) -> dict[str, tuple[int, float]]:
    """{side: (git processes, median ms)} with `size` open feature branches."""
    from releaseboard import vcs
    from releaseboard.releases import intelligence

    path = workdir / f"r{size}.git"
    heads = generate(path, args.commits, size)
    repository, branches = rows(f"r{size}", path, heads)
    mirror = vcs.Mirror(path, str(path), allow_local=True)
    tips = sorted({sha for name, sha in heads.items() if name != "staging"})
    git = ["git", "-C", str(path)]
    base = subprocess.run(
        [*git, "merge-base", "--octopus", *boundaries(path, tips, heads["staging"])], capture_output=True, text=True
    ).stdout.strip()
    raw_argv = [
        [*git, "rev-list", "--parents", "--topo-order", *tips, f"^{heads['staging']}"],
        [*git, "merge-base", "--octopus", *boundaries(path, tips, heads["staging"])],
        [*git, "rev-list", "--parents", "--topo-order", "--max-count=5000", heads["staging"], f"^{base}"],
    ]
    sides = {
        "per-branch": lambda: intelligence.analyse_per_branch(mirror, repository, heads, branches),
        "three": lambda: intelligence.analyse(mirror, repository, heads, branches),
        "raw": lambda: [subprocess.run(argv, capture_output=True, check=True) for argv in raw_argv],
    }
    assert sides["per-branch"]() == sides["three"](), "the two ways disagree"
    times: dict[str, list[float]] = {side: [] for side in sides}
    counts: dict[str, int] = {}
    for round_ in range(args.rounds + 1):
        for side, call in sides.items():
            started[0] = 0
            begin = time.perf_counter()
            call()
            elapsed = (time.perf_counter() - begin) * 1000
            counts[side] = started[0] if side != "raw" else len(raw_argv)
            if round_:
                times[side].append(elapsed)
    mirror.close()
    return {side: (counts[side], statistics.median(times[side])) for side in sides}


if __name__ == "__main__":
    main()
