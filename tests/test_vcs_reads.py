"""Refs and commit objects read in-process (GitPython, releaseboard.vcs.reads) give what
git itself gives, start no git process per read, and never read outside refs/."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from releaseboard.vcs import Identity, Mirror
from tests.gitrepo import Remote, git

BOT = Identity("Releaseboard", "releaseboard@example.com")
ZERO = "0" * 40


class Recorder:
    """A CommandObserver that keeps each git argv."""

    def __init__(self) -> None:
        self.argvs: list[list[str]] = []

    def command_started(self, argv: Sequence[str]) -> object:
        self.argvs.append(list(argv))
        return None

    def command_finished(self, token: object, returncode: int, output: str) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path, remote: Remote) -> Mirror:
    """A mirror with a merge commit on staging, an annotated and a light tag, and some
    refs packed (packed-refs) while others stay loose."""
    feature = remote.commit_on("staging", {"a.py": "A = 1\n"}, "On staging")
    git("checkout", "-q", "-b", "feature/x", "master", cwd=remote.work)
    remote.write({"b.py": "B = 1\n"}, "On the feature")
    git("checkout", "-q", "staging", cwd=remote.work)
    git(
        "-c",
        "user.name=D",
        "-c",
        "user.email=d@x",
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge",
        "feature/x",
        cwd=remote.work,
    )
    git("-c", "user.name=D", "-c", "user.email=d@x", "tag", "-a", "v1.0.0", "-m", "Release", feature, cwd=remote.work)
    git("tag", "light", "master", cwd=remote.work)
    git("push", "-q", "origin", "staging", "feature/x", "v1.0.0", "light", cwd=remote.work)
    mirror = Mirror(tmp_path / "m.git", remote.url, allow_local=True)
    mirror.fetch()
    git("--git-dir", str(mirror.path), "pack-refs", "--all")
    remote.commit_on("feature/x", {"c.py": "C = 1\n"}, "Later")  # this one becomes loose again
    mirror.fetch()
    return mirror


def for_each_ref(mirror: Mirror, prefix: str) -> dict[str, str]:
    out = git("--git-dir", str(mirror.path), "for-each-ref", "--format=%(objectname) %(refname)", "--", prefix)
    return {line.split(" ")[1]: line.split(" ")[0] for line in out.splitlines()}


def rev_parse(mirror: Mirror, rev: str) -> str | None:
    argv = ["git", "--git-dir", str(mirror.path), "rev-parse", "--verify", "--quiet", "--end-of-options"]
    out = subprocess.run([*argv, f"{rev}^{{commit}}"], capture_output=True, text=True).stdout
    return out.strip() or None


@pytest.mark.parametrize("prefix", ["refs/", "refs/heads/", "refs/tags/"])
def test_refs_read_from_the_files_are_what_for_each_ref_lists(mirror, prefix):
    assert (mirror.path / "packed-refs").exists()
    assert (mirror.path / "refs" / "heads" / "feature" / "x").exists()  # loose, newer than its packed line
    assert mirror.refs(prefix) == for_each_ref(mirror, prefix)
    assert list(mirror.refs(prefix)) == sorted(mirror.refs(prefix))


def test_resolve_in_process_gives_what_rev_parse_gives(mirror):
    staging = mirror.branch_head("staging")
    tree = git("--git-dir", str(mirror.path), "rev-parse", f"{staging}^{{tree}}")
    blob = git("--git-dir", str(mirror.path), "rev-parse", f"{staging}:a.py")
    tag_object = mirror.refs("refs/tags/")["refs/tags/v1.0.0"]
    revs = [
        staging,
        f"{staging}^",
        f"{staging}^1",
        f"{staging}^2",  # the merge's second parent
        f"{staging}^3",  # there is none
        "refs/heads/staging",
        "refs/heads/feature/x",
        "refs/tags/v1.0.0",  # annotated: peeled to its commit
        "refs/tags/light",
        tag_object,
        "refs/heads/nope",
        ZERO,
        tree,
        blob,
        "f" * 40,
    ]
    assert {rev: mirror.resolve(rev) for rev in revs} == {rev: rev_parse(mirror, rev) for rev in revs}
    assert mirror.tree_of(staging) == tree
    assert mirror.has_commit(staging) and not mirror.has_commit(tree) and not mirror.has_commit("f" * 40)


def test_reads_start_no_git_command_per_call(tmp_path, mirror):
    recorder = Recorder()
    watched = Mirror(mirror.path, mirror.url, allow_local=True, observer=recorder)
    staging = watched.branch_head("staging")
    assert staging
    for _ in range(3):
        watched.heads()
        watched.tags()
        watched.resolve(f"{staging}^2")
        watched.tree_of(staging)
        watched.has_commit(staging)
    assert recorder.argvs == []
    watched.resolve("staging~1")  # a revision expression: git answers it
    assert [argv[1] for argv in recorder.argvs] == ["-C"] and "rev-parse" in recorder.argvs[0]
    watched.close()


def test_a_symlinked_or_symbolic_ref_file_is_left_to_git(mirror):
    recorder = Recorder()
    watched = Mirror(mirror.path, mirror.url, allow_local=True, observer=recorder)
    assert watched.refs("refs/heads/") == for_each_ref(mirror, "refs/heads/") and recorder.argvs == []
    heads = mirror.path / "refs" / "heads"
    (heads / "alias").symlink_to(heads / "feature" / "x")
    assert watched.refs("refs/heads/") == for_each_ref(mirror, "refs/heads/")
    assert "for-each-ref" in recorder.argvs[-1]  # not read from the file the link points to
    (heads / "alias").unlink()
    (heads / "alias").write_text("ref: refs/heads/staging\n")
    recorder.argvs.clear()
    assert watched.refs("refs/heads/") == for_each_ref(mirror, "refs/heads/")
    assert watched.refs("refs/heads/")["refs/heads/alias"] == watched.branch_head("staging")
    assert "for-each-ref" in recorder.argvs[0]
    (heads / "alias").write_bytes(b"\xe9" + b"a" * 40 + b"\n")  # not even text: git calls it broken
    recorder.argvs.clear()
    assert watched.refs("refs/heads/") == for_each_ref(mirror, "refs/heads/")
    assert "refs/heads/alias" not in watched.refs("refs/heads/") and "for-each-ref" in recorder.argvs[0]
    watched.close()


def cat_file_children() -> list[int]:
    """This process's live `git cat-file` children (GitPython's object database)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            status = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, NotADirectoryError):
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid") == str(os.getpid()) and b"cat-file" in cmdline and "zombie" not in fields["State"]:
            pids.append(int(proc.name))
    return pids


def test_a_dropped_mirror_stops_its_object_readers_at_once(mirror):
    before = cat_file_children()
    reader = Mirror(mirror.path, mirror.url, allow_local=True)
    staging = reader.branch_head("staging")
    assert staging
    reader.tree_of(staging)
    assert len(cat_file_children()) > len(before)
    del reader  # no gc.collect(): GitPython's Repo sits in cycles, the Mirror does not
    assert cat_file_children() == before


@pytest.mark.parametrize(
    "rev", ["refs/heads/../../config", "refs/heads/../HEAD", "refs/tags/./x", "refs/heads/-x", "refs/heads/a.lock"]
)
def test_a_ref_name_that_leaves_refs_is_never_read_as_a_file(mirror, rev):
    # These fall back to git, which refuses them (or finds nothing): never a file read.
    assert mirror.resolve(rev) is None


def test_a_stray_git_dir_does_not_redirect_the_in_process_reads(tmp_path, remote, mirror, monkeypatch):
    elsewhere = tmp_path / "elsewhere.git"
    git("clone", "-q", "--bare", str(mirror.path), str(elsewhere))
    git("--git-dir", str(elsewhere), "update-ref", "refs/heads/staging", remote.head("master"))
    monkeypatch.setenv("GIT_DIR", str(elsewhere))
    fresh = Mirror(mirror.path, mirror.url, allow_local=True)
    assert fresh.branch_head("staging") == remote.head("staging") != remote.head("master")
    assert fresh.resolve("staging") == remote.head("staging")  # git's answer, also from the mirror


def test_a_worker_drops_inherited_git_variables_when_it_starts(monkeypatch):
    from releaseboard.celery import drop_inherited_git_environment

    monkeypatch.setenv("GIT_DIR", "/somewhere/else.git")
    monkeypatch.setenv("GIT_INDEX_FILE", "/tmp/index")
    monkeypatch.setenv("RELEASEBOARD_KEEP_ME", "1")
    drop_inherited_git_environment()
    assert "GIT_DIR" not in os.environ and "GIT_INDEX_FILE" not in os.environ
    assert os.environ["RELEASEBOARD_KEEP_ME"] == "1"
