#!/usr/bin/env python3
"""Builds a release repository with a known conflict matrix, for the radar tests and the benchmarks.

Output, in the directory given with --out:

    remote.git      a bare repository: master (a long history, with merged topic
                    branches), staging (master plus --staging commits), and 50 branches
                    (40 feature/*, 10 hotfix/*), each changing a few files
    manifest.json   what the repository holds and which pairs must conflict:
                    files, master_commits, staging_ahead, branches [{name, base, files}],
                    design [[kind, x, y, path]] (x, y index branches; y may be "staging"),
                    expected_conflicting_pairs {"<a> <b>": [paths]},
                    expected_conflicts_with_staging {"<branch>": [paths]},
                    clean_features_in_order [names]

Conflicts are designed in: pairs of branches that change the same line differently, a
cluster of four that all change one line, a modify/delete and an add/add pair, pairs
that change distant lines of one file (clean), and branches cut from an older staging
that change a line staging changed later. Every other change goes to a line at least
three lines away from any other change, so no conflict happens by accident. The
expected matrix is computed from the changes themselves with a line rule (two sides
conflict on a file when they change the same line differently, or neighbouring lines,
or one deletes a file the other changes, or both add one file differently), not by git.

    python3 bench/gen_repo.py --out /tmp/small --files 100 --commits 200
    python3 bench/gen_repo.py --out /tmp/large --files 20000 --commits 30000

It is also importable: generate(out, files=..., commits=...) returns the manifest.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BRANCHES = 50
HOTFIXES_FROM = 40  # branches 40..49 are hotfixes, cut from master; the others features, from staging
VOCABULARY = [
    "account",
    "audit",
    "basket",
    "billing",
    "cache",
    "cart",
    "checkout",
    "config",
    "coupon",
    "customer",
    "delivery",
    "discount",
    "export",
    "invoice",
    "ledger",
    "login",
    "order",
    "payment",
    "price",
    "queue",
    "refund",
    "report",
    "search",
    "session",
    "shipping",
    "stock",
    "tax",
    "token",
    "user",
    "warehouse",
]
PEOPLE = [(f"Developer {n}", f"developer{n}@example.com") for n in range(1, 25)]
EPOCH = 1_577_836_800  # 2020-01-01, so every run writes the same commits


@dataclass
class Side:
    """What one side of a merge changed since the merge base."""

    lines: dict[tuple[str, int], str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    added: dict[str, str] = field(default_factory=dict)

    def files(self) -> set[str]:
        return {path for path, _ in self.lines} | self.deleted | set(self.added)


def conflicting_files(a: Side, b: Side) -> list[str]:
    """Files on which merging sides a and b conflicts, by the line rule (no git)."""
    files = set()
    for (path, line), text in a.lines.items():
        for near in (line - 1, line, line + 1):
            other = b.lines.get((path, near))
            if other is not None and (near != line or other != text):
                files.add(path)
    touched_a, touched_b = {p for p, _ in a.lines}, {p for p, _ in b.lines}
    files |= (a.deleted & touched_b) | (b.deleted & touched_a)
    files |= {p for p in set(a.added) & set(b.added) if a.added[p] != b.added[p]}
    return sorted(files)


class FastImport:
    """Writes commits into a bare repository through one `git fast-import` process."""

    def __init__(self, bare: Path, rng: random.Random, commits_expected: int) -> None:
        self.proc = subprocess.Popen(
            ["git", "-C", str(bare), "fast-import", "--quiet", "--done"], stdin=subprocess.PIPE, bufsize=1 << 20
        )
        assert self.proc.stdin is not None
        self.out: IO[bytes] = self.proc.stdin
        self.rng = rng
        self.marks = 0
        self.when = EPOCH
        # Spread the history over about three years, whatever its length.
        self.gap = max(30, 3 * 365 * 86400 // max(commits_expected, 1))

    def _data(self, text: str) -> None:
        raw = text.encode()
        self.out.write(b"data %d\n%s\n" % (len(raw), raw))

    def commit(
        self,
        ref: str,
        message: str,
        files: dict[str, str],
        *,
        parent: int | None = None,
        merge: int | None = None,
        delete: tuple[str, ...] = (),
    ) -> int:
        """Write a commit on `ref` (after `parent`, or after the ref's last commit) and return its mark."""
        self.marks += 1
        self.when += self.rng.randint(self.gap // 2, self.gap * 3 // 2)
        name, email = self.rng.choice(PEOPLE)
        who = f"{name} <{email}> {self.when} +0000"
        self.out.write(f"commit {ref}\nmark :{self.marks}\nauthor {who}\ncommitter {who}\n".encode())
        self._data(message)
        if parent is not None:
            self.out.write(b"from :%d\n" % parent)
        if merge is not None:
            self.out.write(b"merge :%d\n" % merge)
        for path in delete:
            self.out.write(f"D {path}\n".encode())
        for path in sorted(files):
            self.out.write(f"M 100644 inline {path}\n".encode())
            self._data(files[path])
        return self.marks

    def finish(self) -> None:
        self.out.write(b"done\n")
        self.out.close()
        if self.proc.wait() != 0:
            raise RuntimeError("git fast-import failed")


class Generator:
    def __init__(self, files: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.paths = self._layout(files)
        self.content = {path: self._new_file(path) for path in self.paths}
        self.reserved: set[tuple[str, int]] = set()

    # -- files ----------------------------------------------------------------------------

    def _layout(self, count: int) -> list[str]:
        """Paths spread over folders, a handful per folder in small repositories, 25 in large ones."""
        per_folder = 25 if count >= 2000 else 5
        roots = ("app", "core", "tests", "docs", "scripts")
        paths = []
        for n in range(count):
            folder = n // per_folder
            root = roots[folder % len(roots)]
            deep = f"{root}/part{folder // len(roots) % 16:02d}/unit{folder // (len(roots) * 16):03d}"
            suffix = ".md" if root == "docs" else ".py"
            paths.append(f"{deep}/f{n:05d}{suffix}")
        return sorted(paths)

    def _line(self, tag: str) -> str:
        word = self.rng.choice(VOCABULARY)
        return f"{tag}_{word} = handle_{word}({self.rng.randrange(1_000_000)})\n"

    def _new_file(self, path: str) -> tuple[str, ...]:
        return (f"# {path}\n", *(self._line("v") for _ in range(self.rng.randint(20, 60))))

    def text(self, path: str) -> str:
        return "".join(self.content[path])

    def edit(self, path: str, changes: dict[int, str]) -> None:
        lines = list(self.content[path])
        for line, text in changes.items():
            lines[line] = text
        self.content[path] = tuple(lines)

    def churn(self, path: str) -> None:
        """A history edit: a few lines rewritten, sometimes one appended."""
        lines = list(self.content[path])
        for _ in range(self.rng.randint(1, 3)):
            lines[self.rng.randrange(1, len(lines))] = self._line("h")
        if self.rng.random() < 0.15:
            lines.append(self._line("h"))
        self.content[path] = tuple(lines)

    # -- lines that designed changes may use -----------------------------------------------

    def slot(self, path: str | None = None, line: int | None = None) -> tuple[str, int]:
        """A line no other designed change is within two lines of; reserved from now on."""
        for _ in range(20_000):
            p = path or self.rng.choice(self.paths)
            size = len(self.content[p])
            n = line if line is not None else self.rng.randrange(2, size - 2)
            if n < size and not any((p, near) in self.reserved for near in range(n - 2, n + 3)):
                self.reserved.add((p, n))
                return p, n
            if path is not None and line is not None:
                break
        raise RuntimeError("no free line left; use more --files")

    def untouched_file(self, min_lines: int = 0) -> str:
        """A file in which no designed change happens yet."""
        busy = {p for p, _ in self.reserved}
        for _ in range(20_000):
            path = self.rng.choice(self.paths)
            if path not in busy and len(self.content[path]) >= min_lines:
                return path
        raise RuntimeError("no untouched file left; use more --files")


def generate(out: Path, *, files: int = 100, commits: int = 200, staging: int = 30, seed: int = 42) -> dict[str, Any]:
    """Build out/remote.git and out/manifest.json; return the manifest."""
    if files < 100 or commits < 10 or staging < 20:
        raise ValueError("use at least 100 files, 10 commits and 20 staging commits")
    bare = Path(out) / "remote.git"
    if bare.exists():
        raise FileExistsError(f"{bare} exists; remove it first")
    bare.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "master", str(bare)], check=True)
    gen = Generator(files, seed)
    rng = gen.rng
    git = FastImport(bare, rng, commits)

    # -- master: a mainline with topic branches merged into it now and then --------------
    tip = git.commit("refs/heads/master", "Initial import\n", {p: gen.text(p) for p in gen.paths})
    made = 1
    while made < commits:
        if commits - made >= 5 and rng.random() < 0.1:
            topic_files = rng.sample(gen.paths, rng.randint(1, 3))
            before = {p: gen.content[p] for p in topic_files}
            topic = None
            for n in range(rng.randint(1, 2)):
                for path in topic_files:
                    gen.churn(path)
                topic = git.commit(
                    "refs/topic/work",
                    f"{rng.choice(VOCABULARY)}: rework ({n + 1})\n",
                    {p: gen.text(p) for p in topic_files},
                    parent=tip if n == 0 else None,
                )
                made += 1
            after = {p: gen.content[p] for p in topic_files}
            gen.content.update(before)  # master moves on without the topic for a while
            for _ in range(rng.randint(0, 2)):
                path = rng.choice(gen.paths)
                while path in after:
                    path = rng.choice(gen.paths)
                gen.churn(path)
                tip = git.commit("refs/heads/master", f"Tidy {path}\n", {path: gen.text(path)}, parent=tip)
                made += 1
            gen.content.update(after)
            tip = git.commit(
                "refs/heads/master",
                f"Merge topic {made}\n",
                {p: gen.text(p) for p in topic_files},
                parent=tip,
                merge=topic,
            )
            made += 1
        else:
            changed = rng.sample(gen.paths, rng.randint(1, 3))
            for path in changed:
                gen.churn(path)
            tip = git.commit(
                "refs/heads/master",
                f"Improve {rng.choice(VOCABULARY)} handling\n",
                {p: gen.text(p) for p in changed},
                parent=tip,
            )
            made += 1

    # -- staging: master plus `staging` promoted changes --------------------------------
    staging_marks = [tip]  # staging_marks[k]: staging after k of its commits (0: master)
    staging_changes: list[dict[tuple[str, int], str]] = [{}]
    snapshots = [dict(gen.content)]
    for k in range(1, staging + 1):
        changes = {gen.slot(): gen._line(f"s{k}") for _ in range(rng.randint(1, 2))}
        for (path, line), text in changes.items():
            gen.edit(path, {line: text})
        tip = git.commit(
            "refs/heads/staging",
            f"Promote PROJ-{500 + k} into staging\n",
            {p: gen.text(p) for p, _ in changes},
            parent=tip,
        )
        staging_marks.append(tip)
        staging_changes.append(changes)
        snapshots.append(dict(gen.content))

    # -- the branches and their designed conflicts ----------------------------------------
    names = [
        f"{'hotfix' if b >= HOTFIXES_FROM else 'feature'}/PROJ-{2000 + b}-"
        f"{VOCABULARY[b % len(VOCABULARY)]}-{VOCABULARY[(b * 11 + 3) % len(VOCABULARY)]}"
        for b in range(BRANCHES)
    ]
    base = [0 if b >= HOTFIXES_FROM else rng.randint(staging - 8, staging) for b in range(BRANCHES)]
    own = [Side() for _ in range(BRANCHES)]
    design: list[list[Any]] = []

    for x, y in [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (40, 41)]:
        path, line = gen.slot()
        own[x].lines[(path, line)] = gen._line(f"b{x}")
        own[y].lines[(path, line)] = gen._line(f"b{y}")
        design.append(["same-line", x, y, path])
    path, line = gen.slot()
    for x in (10, 11, 12, 13):
        own[x].lines[(path, line)] = gen._line(f"b{x}")
    design.append(["cluster", 10, 13, path])
    for x, y in [(14, 15), (16, 17), (18, 19), (42, 43)]:
        path = gen.untouched_file(min_lines=30)
        size = len(gen.content[path])
        own[x].lines[gen.slot(path, 3)] = gen._line(f"b{x}")
        own[y].lines[gen.slot(path, size - 3)] = gen._line(f"b{y}")
        design.append(["same-file-distant-lines(clean)", x, y, path])
    path = gen.untouched_file()
    gen.reserved |= {(path, n) for n in range(len(gen.content[path]) + 3)}  # nobody else touches it
    own[20].deleted.add(path)
    own[21].lines[(path, 5)] = gen._line("b21")
    design.append(["modify/delete", 20, 21, path])
    added = gen.paths[0].rsplit("/", 1)[0] + "/common_helpers.py"
    for x in (22, 23):
        own[x].added[added] = f"# helpers of branch {x}\n\ndef helper():\n    return {x}\n"
    design.append(["add/add", 22, 23, added])
    # Cut from an older staging, they change a line one of the last staging commits changed.
    for b in (24, 25, 26, 27, 44, 45):
        if b < HOTFIXES_FROM:
            base[b] = rng.randint(staging - 16, staging - 6)
        late = rng.randint(staging - 3, staging)
        (path, line), _text = rng.choice(sorted(staging_changes[late].items()))
        own[b].lines[(path, line)] = gen._line(f"b{b}")
        design.append([f"vs-staging (staging commit {late})", b, "staging", path])
    for b in range(BRANCHES):  # and each branch changes a few files of its own
        for _ in range(max(0, rng.randint(2, 5) - len(own[b].files()))):
            own[b].lines[gen.slot()] = gen._line(f"b{b}")

    for b, name in enumerate(names):
        tree = dict(snapshots[base[b]])
        edits = sorted(own[b].lines.items())
        parts = max(1, min(len(edits), rng.randint(1, 3)))
        parent: int | None = staging_marks[base[b]]
        for n in range(parts):
            touched = set()
            for (path, line), text in edits[n::parts]:
                lines = list(tree[path])
                lines[line] = text
                tree[path] = tuple(lines)
                touched.add(path)
            first = n == 0
            git.commit(
                f"refs/heads/{name}",
                f"PROJ-{2000 + b}: {rng.choice(VOCABULARY)} work ({n + 1}/{parts})\n",
                {**{p: "".join(tree[p]) for p in touched}, **(own[b].added if first else {})},
                parent=parent,
                delete=tuple(sorted(own[b].deleted)) if first else (),
            )
            parent = None
    git.finish()

    # -- the expected matrix, from the changes themselves -------------------------------
    def since(k_from: int, k_to: int, branch: int | None) -> Side:
        """Staging's changes after k_from up to k_to, then the branch's own on top."""
        side = Side()
        for k in range(k_from + 1, k_to + 1):
            side.lines.update(staging_changes[k])
        if branch is not None:
            side.lines.update(own[branch].lines)
            side.deleted |= own[branch].deleted
            side.added.update(own[branch].added)
        return side

    pairs = {}
    for x in range(BRANCHES):
        for y in range(x + 1, BRANCHES):
            merge_base = min(base[x], base[y])  # staging is linear: the older cut
            conflict = conflicting_files(since(merge_base, base[x], x), since(merge_base, base[y], y))
            if conflict:
                pairs[f"{names[x]} {names[y]}"] = conflict
    with_staging = {}
    for b in range(BRANCHES):
        conflict = conflicting_files(since(base[b], base[b], b), since(base[b], staging, None))
        if conflict:
            with_staging[names[b]] = conflict
    manifest = {
        "files": files,
        "master_commits": made,
        "staging_ahead": staging,
        "branches": [
            {
                "name": names[b],
                "base": "master" if b >= HOTFIXES_FROM else f"staging~{staging - base[b]}",
                "files": sorted(own[b].files()),
            }
            for b in range(BRANCHES)
        ],
        "design": design,
        "expected_conflicting_pairs": pairs,
        "expected_conflicts_with_staging": with_staging,
        "clean_features_in_order": [names[b] for b in range(HOTFIXES_FROM) if names[b] not in with_staging],
    }

    # -- served like a real remote ---------------------------------------------------------
    def repo(*args: str) -> None:
        subprocess.run(["git", "-C", str(bare), *args], check=True, capture_output=True)

    repo("update-ref", "-d", "refs/topic/work")
    repo("repack", "-a", "-d", "-q", "--window=10", "--depth=50")
    repo("pack-refs", "--all")
    repo("commit-graph", "write", "--reachable")
    repo("config", "uploadpack.allowFilter", "true")
    repo("config", "uploadpack.allowAnySHA1InWant", "true")
    (Path(out) / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="directory for remote.git and manifest.json")
    ap.add_argument("--files", type=int, default=20000, help="files in the repository (default: %(default)s)")
    ap.add_argument("--commits", type=int, default=30000, help="commits on master (default: %(default)s)")
    ap.add_argument("--staging", type=int, default=30, help="commits staging is ahead of master (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=42, help="the same seed builds the same repository")
    args = ap.parse_args()
    try:
        manifest = generate(
            Path(args.out).resolve(), files=args.files, commits=args.commits, staging=args.staging, seed=args.seed
        )
    except (ValueError, FileExistsError) as exc:
        sys.exit(str(exc))
    print(
        f"{args.out}: {manifest['master_commits']} commits on master, {len(manifest['branches'])} branches, "
        f"{len(manifest['expected_conflicting_pairs'])} conflicting pairs, "
        f"{len(manifest['expected_conflicts_with_staging'])} conflicting with staging",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
