"""User input never reaches git as an option (DESIGN §2 invariant 7), tried through every
Mirror method and every vcs function that takes a value from a user; and what a killed
git leaves in the mirror does not block the next job."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from releaseboard.vcs import (
    GitError,
    Identity,
    InvalidRemoteURL,
    Mirror,
    RefUpdate,
    check_branch_name,
    check_remote_url,
    ls_remote,
)
from tests.gitrepo import git
from tests.test_vcs import BOT, WHEN
from tests.test_vcs import mirror as mirror_fixture

mirror = mirror_fixture  # the test_vcs fixture, for the tests below


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def payloads(tmp_path: Path, marker: Path) -> list[str]:
    """Values that would run a command or write a file if git read them as options."""
    hooks = tmp_path / "evil-hooks"
    hooks.mkdir()
    for name in ("reference-transaction", "pre-push", "post-checkout", "post-merge"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
        hook.chmod(0o755)
    return [
        f"--output={marker}",
        f"-c core.hooksPath={hooks}",
        f"-ccore.hooksPath={hooks}",
        f"--upload-pack=touch {marker}",
        f"--receive-pack=touch {marker}",
        f"--exec=touch {marker}",
        f"-oProxyCommand=touch {marker}",
    ]


def fails_safely(call: Callable[[], object]) -> object:
    """Run call; it may raise GitError/ValueError or return a 'no' answer, nothing else."""
    try:
        return call()
    except (GitError, ValueError):
        return None


def test_every_mirror_method_refuses_option_shaped_input(remote, mirror, payloads, marker, tmp_path):
    master = mirror.branch_head("master")
    tree = mirror.tree_of(master)
    before = git("--git-dir", str(remote.bare), "for-each-ref")
    for bad in payloads:
        assert mirror.resolve(bad) is None
        assert mirror.branch_head(bad) is None
        assert not mirror.has_commit(bad)
        assert mirror.refs(bad) == {}
        for call in (
            lambda bad=bad: mirror.is_ancestor(bad, master),
            lambda bad=bad: mirror.is_ancestor(master, bad),
            lambda bad=bad: mirror.count_between(bad, master),
            lambda bad=bad: mirror.count_between(master, bad),
            lambda bad=bad: mirror.commits_between(bad, master),
            lambda bad=bad: mirror.commits_between(None, bad),
            lambda bad=bad: mirror.tree_of(bad),
            lambda bad=bad: mirror.merge(bad, master),
            lambda bad=bad: mirror.merge(master, bad),
            lambda bad=bad: mirror.commit_tree(bad, [master], "m", author=BOT, committer=BOT, timestamp=WHEN),
            lambda bad=bad: mirror.commit_tree(tree, [bad], "m", author=BOT, committer=BOT, timestamp=WHEN),
            lambda bad=bad: mirror.make_tag(bad, master, "m", tagger=BOT, timestamp=WHEN),
            lambda bad=bad: mirror.make_tag("v1.0.0", bad, "m", tagger=BOT, timestamp=WHEN),
        ):
            with pytest.raises(GitError):
                call()
        for update in (
            RefUpdate(bad, master, None),
            RefUpdate("refs/heads/staging", bad, master),
            RefUpdate("refs/heads/staging", master, bad),
            RefUpdate(f"refs/heads/{bad}", master, ""),
        ):
            with pytest.raises(GitError):
                mirror.push([update])
        with pytest.raises(ValueError), mirror.checkout(tmp_path / "wt", bad):
            pass
    assert not marker.exists()
    assert git("--git-dir", str(remote.bare), "for-each-ref") == before


def test_a_push_refuses_refspec_tricks(remote, mirror):
    master, staging = mirror.branch_head("master"), mirror.branch_head("staging")
    before = git("--git-dir", str(remote.bare), "for-each-ref")
    for update in (
        RefUpdate("refs/heads/staging", f"+{master}", staging),  # "+" forces
        RefUpdate("refs/heads/x:refs/heads/master", master, ""),  # a second refspec
        RefUpdate(":refs/heads/staging", master, staging),  # deletes
        RefUpdate("refs/remotes/origin/x", master, ""),
        RefUpdate("HEAD", master, staging),
    ):
        with pytest.raises(GitError):
            mirror.push([update])
    assert git("--git-dir", str(remote.bare), "for-each-ref") == before


def test_a_tag_target_cannot_add_headers_to_the_tag_object(mirror):
    master = mirror.branch_head("master")
    with pytest.raises(GitError):
        mirror.make_tag("v1.0.0", f"{master}\ntype commit\ntag v9.9.9", "m", tagger=BOT, timestamp=WHEN)
    with pytest.raises(GitError):
        mirror.make_tag("v1.0.0", master, "m", tagger=Identity("x\ntagger y", "e"), timestamp=WHEN)


def test_module_functions_refuse_option_shaped_input(payloads, marker):
    for bad in payloads:
        assert not check_branch_name(bad)
        with pytest.raises(InvalidRemoteURL):
            check_remote_url(bad, allow_local=True)
        with pytest.raises(GitError):
            ls_remote(bad, allow_local=True)
    assert not marker.exists()


@pytest.mark.parametrize(
    "template",
    [
        "ext::sh -c touch% {marker}",
        "ext::sh%20-c%20touch%20{marker}",
        "fd::17",
        "fd::0,1",
        "ssh://-oProxyCommand=touch%20{marker}/y",
        "ssh://-oProxyCommand=touch {marker}/y",
        "-oProxyCommand=touch {marker}:x",
        "git@-oProxyCommand=touch%20{marker}:x",
    ],
)
def test_hostile_urls_are_refused_and_run_nothing_even_when_git_gets_them(tmp_path, marker, template):
    url = template.format(marker=marker)
    with pytest.raises(InvalidRemoteURL):
        check_remote_url(url, allow_local=True)
    # Defence in depth: were one to reach git (a row written before the check existed),
    # git's transport allowlist and its "strange hostname" checks stop it.
    with pytest.raises(GitError):
        ls_remote(url, allow_local=True)
    with pytest.raises(GitError):
        Mirror(tmp_path / "m.git", url, allow_local=True).fetch()
    assert not marker.exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/r.git", "http://localhost/r.git", "http://[::1]:81/r.git"])
def test_plain_http_is_allowed_only_to_this_machine_and_only_in_local_mode(url):
    assert check_remote_url(url, allow_local=True) == url
    with pytest.raises(InvalidRemoteURL):
        check_remote_url(url, allow_local=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/r.git",
        "http://127.0.0.1.evil.net/r.git",
        "http://user:pw@127.0.0.1/r.git",
        "http://10.0.0.1/r.git",
    ],
)
def test_plain_http_elsewhere_or_with_credentials_is_refused(url):
    with pytest.raises(InvalidRemoteURL):
        check_remote_url(url, allow_local=True)


def test_the_mirror_url_is_stored_as_a_value_not_read_as_an_option(tmp_path, marker):
    url = f"--file={marker}"
    mirror = Mirror(tmp_path / "m.git", url, allow_local=True)
    with pytest.raises(GitError):
        mirror.fetch()
    assert not marker.exists()
    assert git("--git-dir", str(mirror.path), "config", "remote.origin.url") == url


# -- leftovers of a killed git ------------------------------------------------------------------------


def age(path: Path, seconds: float = 3600) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_a_fetch_after_a_killed_fetch_clears_its_stale_locks(remote, mirror):
    new = remote.commit_on("staging", {"n.txt": "n\n"}, "New")
    leftovers = [
        mirror.path / "shallow.lock",
        mirror.path / "packed-refs.lock",
        mirror.path / "refs" / "heads" / "staging.lock",
        mirror.path / "config.lock",
        mirror.path / "objects" / "pack" / "tmp_pack_AbCdEf",
        mirror.path / "objects" / "pack" / "tmp_idx_x",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        age(path)
    mirror.fetch()
    assert mirror.branch_head("staging") == new
    assert not any(p.exists() for p in leftovers)


def test_without_the_cleanup_a_stale_ref_lock_would_block_the_fetch(remote, mirror):
    # What the cleanup prevents, shown with plain git on the same mirror.
    remote.commit_on("staging", {"n.txt": "n\n"}, "New")
    (mirror.path / "refs" / "heads" / "staging.lock").write_text("")
    proc = subprocess.run(
        ["git", "-C", str(mirror.path), "fetch", "origin", "+refs/heads/*:refs/heads/*"], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "lock" in proc.stderr


def test_a_fresh_lock_is_left_alone(mirror):
    # Younger than the threshold: it may belong to a git that is still running.
    lock = mirror.path / "packed-refs.lock"
    lock.write_text("")
    assert mirror.remove_stale_files() == []
    assert lock.exists()
    lock.unlink()


def test_the_cleanup_follows_no_symlinks_out_of_the_mirror(tmp_path, mirror):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "important.lock"
    victim.write_text("keep")
    age(victim)
    (mirror.path / "refs" / "heads" / "link").symlink_to(outside)
    (mirror.path / "refs" / "heads" / "link.lock").symlink_to(victim)
    mirror.remove_stale_files()
    assert victim.read_text() == "keep"
