"""The branch facts from three git processes (one parent map of the open branches'
unmerged commits, one common ancestor of where they meet staging, one parent map of
staging after it) are the facts git gives per branch, on a generated history with
branches of many shapes; and a job's git does not grow with the number of open branches."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import git as gitpython
import pytest
from django.utils import timezone

from releaseboard import vcs
from releaseboard.jobs.execution import JobContext
from releaseboard.jobs.models import Job, JobState
from releaseboard.releases import intelligence
from releaseboard.releases.models import Branch, BranchState, Promotion, PromotionState, Repository

pytestmark = pytest.mark.django_db(transaction=True)


class History:
    """A bare repository whose commits are made with commit-tree: any parents, any date."""

    def __init__(self, path: Path) -> None:
        self.path = path
        subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
        self.tree = self._git("hash-object", "-t", "tree", "-w", "--stdin", input="")
        self.clock = 1_700_000_000
        self.count = 0

    def _git(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.path), *args], input=input, capture_output=True, text=True, check=True, env=env
        )
        return done.stdout.strip()

    def commit(self, *parents: str, skew: int = 0) -> str:
        """A commit on `parents`; skew moves its date (a commit with a wrong clock)."""
        self.clock += 60
        self.count += 1
        when = f"{self.clock + skew} +0000"
        env = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_AUTHOR_DATE": when}
        env |= {"GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com", "GIT_COMMITTER_DATE": when}
        env["PATH"] = "/usr/bin:/bin"
        args = [arg for p in parents for arg in ("-p", p)]
        return self._git("commit-tree", self.tree, *args, "-m", f"commit {self.count}", env=env)

    def line(self, start: str | None, length: int, skew: int = 0) -> list[str]:
        shas = []
        for _ in range(length):
            start = self.commit(*([start] if start else []), skew=skew)
            shas.append(start)
        return shas

    def set_branch(self, name: str, sha: str) -> None:
        self._git("update-ref", f"refs/heads/{name}", sha)


def _varied(history: History) -> tuple[dict[str, str], dict[str, str], str]:
    """({feature name: head}, {hotfix name: head}, the landed hotfix's commit) on a staging
    with a merged side line, a landed hotfix and a commit with a clock years behind."""
    a = history.line(None, 12)
    side = history.line(a[4], 3)
    merge_side = history.commit(a[-1], side[-1])
    b = history.line(merge_side, 10)
    hotfix = history.commit(b[3])
    landed = history.commit(b[-1], hotfix)
    c = history.line(landed, 3)
    c += history.line(c[-1], 1, skew=-5 * 365 * 86400)
    c += history.line(c[-1], 2)
    history.set_branch("staging", c[-1])
    parent = history.line(b[2], 3)
    child = history.line(parent[-1], 2)
    early = history.line(a[1], 3)
    merged_old = history.line(a[3], 2)
    merged_old.append(history.commit(merged_old[-1], b[6]))
    merged_old += history.line(merged_old[-1], 1)
    x, y = history.line(a[6], 1)[0], history.line(a[7], 1)[0]
    features = {
        "at-staging": c[-1],
        "behind-only": a[8],
        "early": early[-1],
        "mid": history.line(b[4], 2)[-1],
        "late": history.line(c[2], 4)[-1],
        "skewed": history.line(c[3], 2, skew=-10 * 365 * 86400)[-1],
        "from-side": history.line(side[1], 2)[-1],
        "side-head": side[-1],
        "side-first": side[0],
        "merged-staging-before-hotfix": merged_old[-1],
        "merged-staging-after-hotfix": history.commit(history.line(a[5], 1)[0], c[1]),
        "parent": parent[-1],
        "parent-copy": parent[-1],
        "child": child[-1],
        "merges-parent": history.commit(history.line(a[9], 2)[-1], parent[-1]),
        "also-merges-parent": history.line(history.commit(history.line(c[0], 1)[0], parent[-1]), 1)[-1],
        "merges-two": history.commit(history.commit(history.line(b[1], 1)[0], child[-1]), early[-1]),
        "has-hotfix-directly": history.commit(history.line(b[0], 1)[0], hotfix),
        "unrelated": history.line(None, 2)[-1],
        "octopus": history.commit(x, y, early[-1]),
    }
    # "rewound" landed on staging, which was then put back: only the branches that have
    # parent's first commit carry it (a commit staging lacks).
    hotfixes = {"landed": hotfix, "open": history.line(c[3], 1)[0], "rewound": parent[0]}
    for name, sha in {**features, **hotfixes}.items():
        history.set_branch(name, sha)
    return features, hotfixes, hotfix


def _rows(history: History, name: str, features: dict[str, str], hotfixes: dict[str, str], landed: str) -> Repository:
    repository = Repository.objects.create(name=name, remote_url=str(history.path), test_command="true")
    for short, kind, names in (("feature/", "feature", features), ("hotfix/", "hotfix", hotfixes)):
        for branch_name in names:
            Branch.objects.create(
                repository=repository, name=f"{short}{branch_name}", kind=kind, state=BranchState.ACTIVE
            )
    for branch in Branch.objects.filter(repository=repository, name__in=["hotfix/landed", "hotfix/rewound"]):
        Promotion.objects.create(
            repository=repository,
            branch=branch,
            title=branch.name,
            state=PromotionState.PROMOTED,
            branch_sha=landed if branch.name == "hotfix/landed" else hotfixes["rewound"],
            promoted_at=timezone.now(),
        )
    return repository


def _heads(features: dict[str, str], hotfixes: dict[str, str], staging: str) -> dict[str, str]:
    heads = {f"feature/{n}": s for n, s in features.items()} | {f"hotfix/{n}": s for n, s in hotfixes.items()}
    return heads | {"staging": staging}


def _by_name(facts: dict[int, intelligence.BranchFacts]) -> dict[str, dict[str, Any]]:
    names = dict(Branch.objects.values_list("pk", "name"))
    return {names[pk]: vars(f) for pk, f in facts.items()}


def test_constant_process_facts_equal_the_per_branch_git_answers_on_varied_branch_shapes(tmp_path, monkeypatch):
    history = History(tmp_path / "remote.git")
    features, hotfixes, landed = _varied(history)
    repository = _rows(history, "shop", features, hotfixes, landed)
    mirror = vcs.Mirror(history.path, str(history.path), allow_local=True)
    heads = _heads(features, hotfixes, mirror.branch_head("staging") or "")
    branches = list(Branch.objects.filter(repository=repository))

    expected = _by_name(intelligence.analyse_per_branch(mirror, repository, heads, branches))
    assert len(expected) == 23
    for window in (intelligence.STAGING_WINDOW, 40, 12, 3):
        # Small windows: branches that forked before them are counted on their own.
        monkeypatch.setattr(intelligence, "STAGING_WINDOW", window)
        notes: list[str] = []
        assert _by_name(intelligence.analyse(mirror, repository, heads, branches, notes)) == expected, window
        # Only the branch with no history in common with staging is counted on its own,
        # unless the window is cut inside what the branches lack (32 commits since "early" forked).
        unrelated = [n for n in notes if n.startswith("feature/unrelated")]
        assert unrelated == ["feature/unrelated shares no history with staging: counted on its own"]
        assert bool(set(notes) - set(unrelated)) == (window < 40), (window, notes)

    assert (expected["feature/at-staging"]["behind"], expected["feature/at-staging"]["ahead"]) == (0, 0)
    assert expected["feature/unrelated"]["behind"] == 34 and expected["feature/unrelated"]["ahead"] == 2
    missing = {name for name, f in expected.items() if "hotfix/landed" in [m["name"] for m in f["missing_hotfixes"]]}
    assert "feature/early" in missing and "feature/merged-staging-before-hotfix" in missing
    assert not missing & {"feature/merged-staging-after-hotfix", "feature/has-hotfix-directly", "feature/late"}
    assert {d["name"] for d in expected["feature/child"]["depends_on"]} == {"feature/parent", "hotfix/rewound"}
    rewound = {
        name for name, f in expected.items() if "hotfix/rewound" not in [m["name"] for m in f["missing_hotfixes"]]
    }
    assert rewound == {
        "hotfix/rewound",
        *(f"feature/{n}" for n in ("parent", "parent-copy", "child")),
        *(f"feature/{n}" for n in ("merges-parent", "also-merges-parent", "merges-two")),
    }


def _counting_processes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every process GitPython starts (run_git and the object reader both go through it)."""
    started: list[list[str]] = []
    real = gitpython.cmd.safer_popen

    def popen(args: Any, *rest: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        started.append(list(args))
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(gitpython.cmd, "safer_popen", popen)
    return started


def _commands(started: list[list[str]]) -> list[str]:
    return [next(arg for arg in argv if arg in ("rev-list", "merge-base", "cat-file", "rev-parse")) for argv in started]


def _context(repository: Repository) -> JobContext:
    job = Job.objects.create(
        kind="sync",
        title="Sync",
        state=JobState.RUNNING,
        lease_token="token",
        lease_expires_at=timezone.now() + timedelta(hours=1),
        scope_id=repository.pk,
    )
    return JobContext(job, "token")


@pytest.mark.parametrize("count", [5, 20])
def test_a_record_runs_the_same_few_git_processes_with_5_and_with_20_open_branches(tmp_path, monkeypatch, count):
    history = History(tmp_path / "remote.git")
    base = history.line(None, 30)
    hotfix = history.commit(base[20])
    staging = history.line(history.commit(base[-1], hotfix), 2)[-1]
    history.set_branch("staging", staging)
    features = {}
    for i in range(count):
        features[f"f{i}"] = history.line(base[i % 25], 1 + i % 4)[-1]
        history.set_branch(f"f{i}", features[f"f{i}"])
    history.set_branch("landed", hotfix)
    repository = _rows(history, "shop", features, {"landed": hotfix}, hotfix)
    heads = _heads(features, {"landed": hotfix}, staging)
    mirror = vcs.Mirror(history.path, str(history.path), allow_local=True)
    ctx = _context(repository)
    started = _counting_processes(monkeypatch)

    intelligence.record(ctx, repository, mirror, heads)

    assert _commands(started) == ["rev-list", "merge-base", "rev-list"], started
    facts = Branch.objects.filter(repository=repository, name__startswith="feature/")
    assert sorted(b.ahead or 0 for b in facts) == sorted(1 + i % 4 for i in range(count))
    assert all(b.missing_hotfixes for b in facts)

    started.clear()
    intelligence.record(ctx, repository, mirror, heads)  # nothing moved
    assert started == []
    moved = history.commit(features["f0"])
    history.set_branch("f0", moved)
    intelligence.record(ctx, repository, mirror, heads | {"feature/f0": moved})
    assert _commands(started) == ["rev-list", "merge-base", "rev-list"], started
    assert Branch.objects.get(repository=repository, name="feature/f0").ahead == 2
    Job.objects.filter(pk=ctx.job.pk).update(state=JobState.SUCCEEDED, finished_at=timezone.now())
