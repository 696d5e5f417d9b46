"""Real git repositories for tests: a bare "remote" and a developer's clone of it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

AUTHOR = ["-c", "user.name=Dev One", "-c", "user.email=dev1@example.com"]

# A tiny project whose test passes unless calc.py is broken; `python3 -m unittest` runs it.
CALC = "def add(a, b):\n    return a + b\n"
TEST_CALC = (
    "import unittest\nimport calc\n\n\nclass CalcTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(calc.add(2, 3), 5)\n"
)
TEST_COMMAND = "python3 -m unittest -v"


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _initial_commit(files: dict[str, str], message: str, branches: list[str]) -> bytes:
    """A git fast-import stream: one commit by Dev One, now, with `files`, on `branches`."""
    who = f"Dev One <dev1@example.com> {int(time.time())} +0000"
    lines = [f"commit refs/heads/{branches[0]}", f"author {who}", f"committer {who}"]
    text = message.encode() + b"\n"
    out = ("\n".join(lines) + f"\ndata {len(text)}\n").encode() + text
    for name, content in files.items():
        data = content.encode()
        out += f"M 100644 inline {name}\ndata {len(data)}\n".encode() + data + b"\n"
    for branch in branches[1:]:
        out += f"reset refs/heads/{branch}\nfrom refs/heads/{branches[0]}\n\n".encode()
    return out


class Remote:
    """A bare remote with master and staging, and a working clone to push from."""

    def __init__(self, root: Path, *, staging: bool = True) -> None:
        self.root = root
        self.bare = root / "remote.git"
        self.work = root / "clone"
        git("init", "-q", "--bare", "-b", "master", str(self.bare))
        # The first commit is written straight into the remote (one process instead of a
        # commit and two pushes from the clone: most tests start with a new remote).
        initial = {"README": "demo\n", "calc.py": CALC, "test_calc.py": TEST_CALC}
        subprocess.run(
            ["git", "fast-import", "--quiet"],
            cwd=self.bare,
            input=_initial_commit(initial, "Initial commit", ["master", "staging"] if staging else ["master"]),
            check=True,
            capture_output=True,
        )
        git("clone", "-q", str(self.bare), str(self.work))

    @property
    def url(self) -> str:
        return str(self.bare)

    def write(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            git("add", "--", name, cwd=self.work)
        git(*AUTHOR, "commit", "-q", "-m", message, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def commit_on(self, branch: str, files: dict[str, str], message: str, *, push: bool = True) -> str:
        """Check out the remote's `branch` in the clone, commit files, push (plain git)."""
        git("fetch", "-q", "origin", cwd=self.work)
        git("checkout", "-q", "-B", branch, f"origin/{branch}", cwd=self.work)
        sha = self.write(files, message)
        if push:
            git("push", "-q", "origin", f"{branch}:{branch}", cwd=self.work)
        return sha

    def head(self, branch: str) -> str:
        return git("--git-dir", str(self.bare), "rev-parse", f"refs/heads/{branch}")

    def exists(self, ref: str) -> bool:
        return (
            subprocess.run(
                ["git", "--git-dir", str(self.bare), "rev-parse", "--verify", "-q", ref], capture_output=True
            ).returncode
            == 0
        )

    def message(self, rev: str) -> str:
        return git("--git-dir", str(self.bare), "log", "-1", "--format=%B", rev)

    def tree(self, rev: str) -> str:
        return git("--git-dir", str(self.bare), "rev-parse", f"{rev}^{{tree}}")

    def parents(self, rev: str) -> list[str]:
        return git("--git-dir", str(self.bare), "log", "-1", "--format=%P", rev).split()

    def tag_target(self, tag: str) -> str:
        return git("--git-dir", str(self.bare), "rev-parse", f"refs/tags/{tag}^{{commit}}")

    def tag_message(self, tag: str) -> str:
        return git("--git-dir", str(self.bare), "tag", "-l", "--format=%(contents)", tag)


# -- helpers for tests/test_promotion_safety.py: watching the remote's refs ----------------


def log_ref_updates(remote: Remote) -> None:
    """Make the bare remote keep a reflog of every ref update (pushes included) from now on."""
    git("--git-dir", str(remote.bare), "config", "core.logAllRefUpdates", "always")


def ref_updates(remote: Remote, ref: str) -> list[tuple[str, str]]:
    """(old, new) of each update of `ref` on the remote since log_ref_updates, oldest first."""
    path = remote.bare / "logs" / ref
    if not path.exists():
        return []
    return [tuple(line.split(" ", 2)[:2]) for line in path.read_text().splitlines() if line]  # type: ignore[misc]


def is_ancestor(remote: Remote, ancestor: str, descendant: str) -> bool:
    return (
        subprocess.run(
            ["git", "--git-dir", str(remote.bare), "merge-base", "--is-ancestor", ancestor, descendant],
            capture_output=True,
        ).returncode
        == 0
    )


def first_parents(remote: Remote, rev: str) -> list[str]:
    return git("--git-dir", str(remote.bare), "rev-list", "--first-parent", rev).split()
