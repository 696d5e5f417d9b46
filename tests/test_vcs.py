"""All of Releaseboard's git, on real repositories: a bare remote, a developer's clone
that pushes with plain git (the "other writer"), and Releaseboard's own bare mirror.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from releaseboard.branching import BranchKind, BranchNames, full_name
from releaseboard.vcs import (
    GitError,
    Identity,
    InvalidRemoteURL,
    Mirror,
    PushRejected,
    RefUpdate,
    check_branch_name,
    check_remote_url,
    ls_remote,
)
from releaseboard.vcs.worktrees import WORKTREE_SLOTS
from tests.gitrepo import Remote, git

BOT = Identity("Releaseboard", "releaseboard@example.com")
WHEN = 1_700_000_000
ZERO = "0" * 40


@pytest.fixture
def mirror(tmp_path: Path, remote: Remote) -> Mirror:
    mirror = Mirror(tmp_path / "mirrors" / "shop.git", remote.url, allow_local=True)
    mirror.fetch()
    return mirror


def feature_branch(remote: Remote, name: str, files: dict[str, str], message: str) -> str:
    """A feature branch made the way a developer makes one: from staging, then a commit."""
    git("push", "-q", "origin", f"{remote.head('staging')}:refs/heads/{name}", cwd=remote.work)
    return remote.commit_on(name, files, message)


def remote_tag(remote: Remote, tag: str) -> str | None:
    """The commit a remote tag points to, or None."""
    if not remote.exists(f"refs/tags/{tag}"):
        return None
    return git("--git-dir", str(remote.bare), "rev-parse", f"refs/tags/{tag}^{{commit}}")


def remote_refs(remote: Remote) -> str:
    return git("--git-dir", str(remote.bare), "for-each-ref", "--format=%(objectname) %(refname)")


def promotion_commit(mirror: Mirror, staging: str, branch: str, number: int = 7) -> str:
    merged = mirror.merge(staging, branch)
    assert merged.clean, merged.conflicts
    return mirror.commit_tree(
        merged.tree,
        [staging, branch],
        f"Promote {number}\n\nReleaseboard-Promotion: {number}\n",
        author=BOT,
        committer=BOT,
        timestamp=WHEN,
    )


# -- branch names and URLs -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["master", "staging", "main", "feature/login", "hotfix/crash-1.2", "feature/a.b_c-d"])
def test_git_accepts_plain_branch_names(name):
    assert check_branch_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "-c",
        "--upload-pack=x",
        "-",
        "HEAD",
        "a..b",
        "a b",
        "a\tb",
        "a\nb",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "@{-1}",
        "a@{u}",
        "feature/",
        "feature//x",
        "feature/.x",
        "x.lock",
        "feature/a.lock/b",
        "a.",
        "/a",
        ".a",
        "",
    ],
)
def test_git_refuses_hostile_branch_names(name):
    assert not check_branch_name(name)


def test_a_name_git_would_expand_is_refused_even_inside_a_repository(remote, monkeypatch):
    # Inside a clone, `check-ref-format --branch @{-1}` prints the previously checked-out
    # branch; the name must come back unchanged to count as valid.
    git("checkout", "-q", "-b", "other", cwd=remote.work)
    git("checkout", "-q", "master", cwd=remote.work)
    monkeypatch.chdir(remote.work)
    assert git("check-ref-format", "--branch", "@{-1}", cwd=remote.work) == "other"
    assert not check_branch_name("@{-1}")


@pytest.mark.parametrize("short", ["login", "team/login-form", "v2.0", "a" * 100])
def test_every_name_the_model_accepts_git_accepts_too(short):
    names = BranchNames(master="main", feature_prefix="feat/")
    for kind in (BranchKind.FEATURE, BranchKind.HOTFIX):
        assert check_branch_name(full_name(names, kind, short))


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/shop.git",
        "https://git.example.com:8443/acme/shop",
        "ssh://git@github.com/acme/shop.git",
        "ssh://git@git.example.com:2222/acme/shop.git",
        "git@github.com:acme/shop.git",
        "deploy@git.example.com:/srv/git/shop.git",
        "  https://github.com/acme/shop.git  ",
    ],
)
def test_remote_urls_over_https_ssh_and_scp_are_accepted(url):
    assert check_remote_url(url, allow_local=False) == url.strip()


@pytest.mark.parametrize("url", ["/srv/git/shop.git", "file:///srv/git/shop.git"])
def test_local_repositories_are_accepted_only_when_allowed(url):
    assert check_remote_url(url, allow_local=True) == url
    with pytest.raises(InvalidRemoteURL, match="Local repositories are not allowed"):
        check_remote_url(url, allow_local=False)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ext::sh -c touch% /tmp/pwned", "spaces"),
        ("ext::sh%20-c%20id", "remote helpers"),
        ("fd::17", "remote helpers"),
        ("EXT::x", "remote helpers"),
        ("transport::https://github.com/acme/shop", "remote helpers"),
        ("-oProxyCommand=touch /tmp/pwned", "start with '-'"),
        ("-oProxyCommand=id", "start with '-'"),
        ("--upload-pack=touch /tmp/pwned", "start with '-'"),
        ("--upload-pack=id", "start with '-'"),
        ("ssh://-oProxyCommand=id/x", "host name"),
        ("git@-oProxyCommand=id:x", "https:// or ssh://"),
        ("https://user:s3cret@github.com/acme/shop.git", "credentials"),
        ("https://ghp_token@github.com/acme/shop.git", "credentials"),
        ("ssh://git:s3cret@github.com/acme/shop.git", "credentials"),
        ("https://github.com/acme/my shop.git", "spaces"),
        ("https://github.com/acme/shop.git\n--upload-pack=id", "control characters"),
        ("https://github.com/acme/shop.git\tx", "control characters"),
        ("https://github.com/\x00acme", "control characters"),
        ("https:///acme/shop.git", "host name"),
        ("http://github.com/acme/shop.git", "https:// or ssh://"),
        ("git://github.com/acme/shop.git", "https:// or ssh://"),
        ("ftp://example.com/shop.git", "https:// or ssh://"),
        ("shop.git", "https:// or ssh://"),
        ("../other/repo", "https:// or ssh://"),
        ("", "Enter the repository's URL"),
        ("   ", "Enter the repository's URL"),
    ],
)
def test_hostile_remote_urls_are_refused_with_a_reason(url, why):
    with pytest.raises(InvalidRemoteURL, match=re.escape(why)):
        check_remote_url(url, allow_local=True)


def test_a_url_with_a_delete_control_character_is_refused():
    # BUG: only characters below 32 count as control characters; DEL (127) passes.
    with pytest.raises(InvalidRemoteURL, match="control characters"):
        check_remote_url("https://github.com/acme/shop.git\x7f", allow_local=False)


# -- reading the remote ---------------------------------------------------------------------------


def test_ls_remote_lists_branches_and_tags_without_peeled_entries(remote):
    git(*["-c", "user.name=a", "-c", "user.email=a@example.com"], "tag", "-a", "-m", "one", "v1.0.0", cwd=remote.work)
    git("push", "-q", "origin", "v1.0.0", cwd=remote.work)
    refs = ls_remote(remote.url, allow_local=True)
    assert refs["refs/heads/master"] == remote.head("master")
    assert refs["refs/heads/staging"] == remote.head("staging")
    # The annotated tag's own object, not the commit it points to.
    assert refs["refs/tags/v1.0.0"] == git("--git-dir", str(remote.bare), "rev-parse", "refs/tags/v1.0.0")
    assert not any(ref.endswith("^{}") for ref in refs)


def test_ls_remote_refuses_a_local_repository_when_local_is_not_allowed(remote):
    with pytest.raises(GitError, match="transport 'file' not allowed"):
        ls_remote(remote.url, allow_local=False)


def test_ls_remote_treats_an_option_shaped_url_as_a_url(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(GitError):
        ls_remote(f"--upload-pack=touch {marker}", allow_local=True)
    assert not marker.exists()


def test_fetch_mirrors_branches_and_tags(remote, mirror):
    assert mirror.heads() == {"master": remote.head("master"), "staging": remote.head("staging")}
    assert mirror.tags() == []
    sha = feature_branch(remote, "feature/login", {"login.py": "x = 1\n"}, "Add login")
    git("tag", "v0.1.0", remote.head("master"), cwd=remote.work)
    git("push", "-q", "origin", "v0.1.0", cwd=remote.work)
    mirror.fetch()
    assert mirror.heads()["feature/login"] == sha
    assert mirror.tags() == ["v0.1.0"]
    assert mirror.branch_head("feature/login") == sha
    assert mirror.resolve("refs/tags/v0.1.0") == remote.head("master")


def test_fetch_prunes_branches_deleted_on_the_remote(remote, mirror):
    feature_branch(remote, "feature/gone", {"g.py": ""}, "Soon gone")
    mirror.fetch()
    assert "feature/gone" in mirror.heads()
    git("push", "-q", "origin", "--delete", "feature/gone", cwd=remote.work)
    mirror.fetch()
    assert "feature/gone" not in mirror.heads()
    assert mirror.branch_head("feature/gone") is None


def test_resolve_gives_none_for_what_does_not_exist(mirror):
    assert mirror.resolve("refs/heads/nope") is None
    assert mirror.resolve(ZERO) is None
    assert not mirror.has_commit(ZERO)
    assert mirror.has_commit(mirror.branch_head("master"))


def test_a_mirror_pointed_at_an_option_shaped_url_fails_to_fetch_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    mirror = Mirror(tmp_path / "m.git", f"--upload-pack=touch {marker}", allow_local=True)
    with pytest.raises(GitError):
        mirror.fetch()
    assert not marker.exists()


# -- creating branches ------------------------------------------------------------------------


def test_a_new_branch_is_created_when_the_name_is_free(remote, mirror):
    staging = mirror.branch_head("staging")
    mirror.push([RefUpdate("refs/heads/feature/login", staging, "")])
    assert remote.head("feature/login") == staging


def test_creating_the_same_branch_twice_at_the_same_commit_is_harmless(remote, mirror):
    # A task delivered twice repeats the step; the second push changes nothing.
    staging = mirror.branch_head("staging")
    mirror.push([RefUpdate("refs/heads/feature/login", staging, "")])
    mirror.push([RefUpdate("refs/heads/feature/login", staging, "")])
    assert remote.head("feature/login") == staging


def test_a_branch_that_already_exists_elsewhere_is_not_overwritten(remote, mirror):
    theirs = feature_branch(remote, "feature/login", {"login.py": "theirs\n"}, "Somebody's login")
    with pytest.raises(PushRejected) as rejected:
        mirror.push([RefUpdate("refs/heads/feature/login", mirror.branch_head("staging"), "")])
    assert "refs/heads/feature/login" in rejected.value.rejected
    assert remote.head("feature/login") == theirs


# -- merging ------------------------------------------------------------------------------------


def test_a_clean_merge_contains_both_sides(remote, mirror):
    remote.commit_on("staging", {"staging.txt": "on staging\n"}, "Staging work")
    feature = feature_branch(remote, "feature/login", {"login.py": "x = 1\n"}, "Add login")
    mirror.fetch()
    merged = mirror.merge(mirror.branch_head("staging"), feature)
    assert merged.clean and merged.conflicts == [] and merged.conflicted_paths == []
    files = git("--git-dir", str(mirror.path), "ls-tree", "--name-only", merged.tree).split()
    assert {"staging.txt", "login.py", "calc.py"} <= set(files)


def test_the_same_merge_gives_the_same_commit_on_another_worker(tmp_path, remote, mirror):
    # Worker B rebuilds the exact commit worker A tested, from the same inputs.
    feature = feature_branch(remote, "feature/login", {"login.py": "x = 1\n"}, "Add login")
    mirror.fetch()
    staging = mirror.branch_head("staging")
    first = promotion_commit(mirror, staging, feature)
    other = Mirror(tmp_path / "worker-b" / "shop.git", remote.url, allow_local=True)
    other.fetch()
    assert promotion_commit(other, staging, feature) == first
    assert other.tree_of(first) == mirror.tree_of(first)
    assert git("--git-dir", str(mirror.path), "rev-list", "--parents", "-n1", first).split()[1:] == [staging, feature]


def test_a_different_timestamp_or_message_gives_a_different_commit(remote, mirror):
    feature = feature_branch(remote, "feature/login", {"login.py": "x = 1\n"}, "Add login")
    mirror.fetch()
    staging = mirror.branch_head("staging")
    tree = mirror.merge(staging, feature).tree
    one = mirror.commit_tree(tree, [staging, feature], "m\n", author=BOT, committer=BOT, timestamp=WHEN)
    assert one != mirror.commit_tree(tree, [staging, feature], "m\n", author=BOT, committer=BOT, timestamp=WHEN + 1)
    assert one != mirror.commit_tree(tree, [staging, feature], "n\n", author=BOT, committer=BOT, timestamp=WHEN)


def conflicting(
    remote: Remote,
    mirror: Mirror,
    staging_files: dict[str, str],
    feature_files: dict[str, str],
    *,
    delete_on_feature: str = "",
):
    git("push", "-q", "origin", f"{remote.head('staging')}:refs/heads/feature/clash", cwd=remote.work)
    remote.commit_on("staging", staging_files, "Staging side")
    if delete_on_feature:
        git("fetch", "-q", "origin", cwd=remote.work)
        git("checkout", "-q", "-B", "feature/clash", "origin/feature/clash", cwd=remote.work)
        git("rm", "-q", "--", delete_on_feature, cwd=remote.work)
        git("-c", "user.name=a", "-c", "user.email=a@example.com", "commit", "-q", "-m", "Delete", cwd=remote.work)
        git("push", "-q", "origin", "feature/clash", cwd=remote.work)
    if feature_files:
        remote.commit_on("feature/clash", feature_files, "Feature side")
    mirror.fetch()
    staging, feature = mirror.branch_head("staging"), mirror.branch_head("feature/clash")
    assert staging and feature
    return mirror.merge(staging, feature)


def test_both_sides_changing_a_file_is_a_content_conflict(remote, mirror):
    merged = conflicting(
        remote,
        mirror,
        {"calc.py": "def add(a, b):\n    return b + a\n"},
        {"calc.py": "def add(a, b):\n    return a - b\n"},
    )
    assert not merged.clean
    assert [(c.path, c.kind) for c in merged.conflicts] == [("calc.py", "content")]
    assert merged.tree  # the tree with conflict markers still exists


def test_a_file_changed_on_one_side_and_deleted_on_the_other_is_a_modify_delete_conflict(remote, mirror):
    merged = conflicting(remote, mirror, {"README": "changed on staging\n"}, {}, delete_on_feature="README")
    assert [(c.path, c.kind) for c in merged.conflicts] == [("README", "modify/delete")]


def test_a_file_added_on_both_sides_is_an_add_add_conflict(remote, mirror):
    # BUG: merge-tree's stable conflict type for add/add is "CONFLICT (contents)"; the
    # add/add kind is only in the message that follows it, which the parser skips.
    merged = conflicting(remote, mirror, {"new.py": "staging = 1\n"}, {"new.py": "feature = 1\n"})
    assert [(c.path, c.kind) for c in merged.conflicts] == [("new.py", "add/add")]


def test_every_conflicted_file_is_listed_once(remote, mirror):
    merged = conflicting(
        remote,
        mirror,
        {"calc.py": "s\n", "2": "s\n", "z.txt": "s\n"},
        {"calc.py": "f\n", "2": "f\n", "z.txt": "f\n", "clean.txt": "ok\n"},
    )
    assert merged.conflicted_paths == ["2", "calc.py", "z.txt"]
    assert len(merged.conflicts) == 3


def test_merging_a_commit_the_mirror_does_not_have_is_an_error_not_a_clean_merge(mirror):
    # BUG: merge-tree exits 1 for "not something we can merge", which was read as
    # "conflicts", and with none parsed the result claimed to be clean, with no tree.
    with pytest.raises(GitError):
        mirror.merge(mirror.branch_head("staging"), "1" * 40)


# -- compare-and-swap pushes --------------------------------------------------------------------


def test_promotion_push_lands_when_staging_has_not_moved(remote, mirror):
    feature = feature_branch(remote, "feature/login", {"login.py": "x = 1\n"}, "Add login")
    mirror.fetch()
    staging = mirror.branch_head("staging")
    commit = promotion_commit(mirror, staging, feature)
    mirror.push([RefUpdate("refs/heads/staging", commit, staging)])
    assert remote.head("staging") == commit
    assert "Releaseboard-Promotion: 7" in remote.message("staging")


def test_push_refused_when_staging_moved_keeps_the_other_writers_commit(remote, mirror):
    feature = feature_branch(remote, "feature/login", {"login.py": "x = 1\n"}, "Add login")
    mirror.fetch()
    staging = mirror.branch_head("staging")
    commit = promotion_commit(mirror, staging, feature)
    # Between our fetch and our push, someone pushes to staging with plain git.
    theirs = remote.commit_on("staging", {"direct.txt": "pushed by hand\n"}, "Direct push")
    with pytest.raises(PushRejected) as rejected:
        mirror.push([RefUpdate("refs/heads/staging", commit, staging)])
    assert rejected.value.stale
    assert not rejected.value.exists
    assert "refs/heads/staging" in rejected.value.rejected
    assert "push rejected" in str(rejected.value)
    assert remote.head("staging") == theirs


def test_push_with_a_stale_expectation_never_rewinds_the_branch(remote, mirror):
    old = mirror.branch_head("staging")
    newer = remote.commit_on("staging", {"a.txt": "a\n"}, "Newer")
    # Writing the old commit back, "expecting" the old one: refused, nothing lost.
    with pytest.raises(PushRejected) as rejected:
        mirror.push([RefUpdate("refs/heads/staging", old, old)])
    assert rejected.value.stale
    assert remote.head("staging") == newer


def release(remote: Remote, mirror: Mirror) -> tuple[str, str, str]:
    """Staging one commit ahead of master; returns (master, staging, tag object for staging)."""
    remote.commit_on("staging", {"feature.txt": "new\n"}, "A feature")
    mirror.fetch()
    master, staging = mirror.branch_head("master"), mirror.branch_head("staging")
    assert master and staging
    tag = mirror.make_tag("v1.0.0", staging, "Release 1.0.0", tagger=BOT, timestamp=WHEN)
    return master, staging, tag


def test_master_and_its_tag_land_together_in_one_atomic_push(remote, mirror):
    master, staging, tag = release(remote, mirror)
    mirror.push(
        [RefUpdate("refs/heads/master", staging, master), RefUpdate("refs/tags/v1.0.0", tag, None)], atomic=True
    )
    assert remote.head("master") == staging
    assert remote_tag(remote, "v1.0.0") == staging
    assert git("--git-dir", str(remote.bare), "cat-file", "-t", "refs/tags/v1.0.0") == "tag"
    assert "Release 1.0.0" in git("--git-dir", str(remote.bare), "cat-file", "-p", "refs/tags/v1.0.0")


def test_an_existing_tag_moves_neither_master_nor_the_tag(remote, mirror):
    master, staging, tag = release(remote, mirror)
    git("tag", "v1.0.0", master, cwd=remote.work)
    git("push", "-q", "origin", "v1.0.0", cwd=remote.work)
    with pytest.raises(PushRejected) as rejected:
        mirror.push(
            [RefUpdate("refs/heads/master", staging, master), RefUpdate("refs/tags/v1.0.0", tag, None)], atomic=True
        )
    assert rejected.value.exists
    assert "refs/tags/v1.0.0" in rejected.value.rejected
    assert remote.head("master") == master
    assert remote_tag(remote, "v1.0.0") == master


def test_a_moved_master_stops_the_tag_too(remote, mirror):
    master, staging, tag = release(remote, mirror)
    hand = remote.commit_on("master", {"hand.txt": "x\n"}, "Pushed to master by hand")
    with pytest.raises(PushRejected) as rejected:
        mirror.push(
            [RefUpdate("refs/heads/master", staging, master), RefUpdate("refs/tags/v1.0.0", tag, None)], atomic=True
        )
    assert rejected.value.stale
    assert remote.head("master") == hand
    assert remote_tag(remote, "v1.0.0") is None


def test_a_plain_push_of_an_existing_tag_name_is_refused(remote, mirror):
    master, staging, tag = release(remote, mirror)
    mirror.push([RefUpdate("refs/tags/v1.0.0", tag, None)])
    again = mirror.make_tag("v1.0.0", master, "Release 1.0.0 again", tagger=BOT, timestamp=WHEN + 60)
    with pytest.raises(PushRejected) as rejected:
        mirror.push([RefUpdate("refs/tags/v1.0.0", again, None)])
    assert rejected.value.exists
    assert remote_tag(remote, "v1.0.0") == staging


# -- history ------------------------------------------------------------------------------------


def test_count_between_gives_behind_and_ahead(remote, mirror):
    master = mirror.branch_head("master")
    remote.commit_on("staging", {"a.txt": "1\n"}, "One")
    remote.commit_on("staging", {"b.txt": "2\n"}, "Two")
    remote.commit_on("master", {"hot.txt": "3\n"}, "Hot")
    mirror.fetch()
    staging, master_now = mirror.branch_head("staging"), mirror.branch_head("master")
    assert mirror.count_between(master, staging) == (0, 2)
    assert mirror.count_between(master_now, staging) == (1, 2)
    assert mirror.count_between(staging, staging) == (0, 0)


def test_is_ancestor_follows_history(remote, mirror):
    master = mirror.branch_head("master")
    remote.commit_on("staging", {"a.txt": "1\n"}, "One")
    mirror.fetch()
    staging = mirror.branch_head("staging")
    assert mirror.is_ancestor(master, staging)
    assert not mirror.is_ancestor(staging, master)
    assert mirror.is_ancestor(staging, staging)


def test_commits_between_lists_new_commits_newest_first_with_trailers(remote, mirror):
    base = mirror.branch_head("staging")
    remote.commit_on("staging", {"a.txt": "1\n"}, "Plain commit")
    promoted = remote.commit_on(
        "staging",
        {"b.txt": "2\n"},
        "Promote feature/login\n\nMerged by Releaseboard.\n\n"
        "Releaseboard-Promotion: 7\nReviewed-by: A\nReviewed-by: B\n",
    )
    mirror.fetch()
    commits = mirror.commits_between(base, mirror.branch_head("staging"))
    assert [c.subject for c in commits] == ["Promote feature/login", "Plain commit"]
    top = commits[0]
    assert top.sha == promoted
    assert top.trailers == {"Releaseboard-Promotion": ["7"], "Reviewed-by": ["A", "B"]}
    assert (top.author_name, top.author_email) == ("Dev One", "dev1@example.com")
    assert top.authored_at > 0
    assert commits[1].trailers == {}


def test_commits_between_without_a_base_walks_the_whole_history(mirror):
    commits = mirror.commits_between(None, mirror.branch_head("master"))
    assert [c.subject for c in commits] == ["Initial commit"]


def test_commits_between_respects_the_limit(remote, mirror):
    for n in range(3):
        remote.commit_on("staging", {f"{n}.txt": "x\n"}, f"Commit {n}")
    mirror.fetch()
    assert len(mirror.commits_between(mirror.branch_head("master"), mirror.branch_head("staging"), limit=2)) == 2


def test_commits_between_an_unknown_commit_is_a_git_error(mirror):
    # Callers catch GitError; no other library's exception may escape.
    with pytest.raises(GitError):
        mirror.commits_between(ZERO, mirror.branch_head("master"))


# -- worktrees for test runs ----------------------------------------------------------------------


def head_of(path: Path) -> str:
    return git("rev-parse", "HEAD", cwd=path)


def status_of(path: Path) -> str:
    return git("status", "--porcelain", "--ignored", "--untracked-files=all", cwd=path)


def two_commits(remote: Remote, mirror: Mirror) -> tuple[str, str]:
    first = mirror.branch_head("master")
    assert first
    second = remote.commit_on("staging", {"second.txt": "2\n"}, "Second")
    mirror.fetch()
    return first, second


def test_checkout_gives_a_clean_worktree_at_the_commit(tmp_path, remote, mirror):
    first, _ = two_commits(remote, mirror)
    with mirror.checkout(tmp_path / "wt", first) as path:
        assert head_of(path) == first
        assert status_of(path) == ""
        assert (path / "calc.py").read_text().startswith("def add")
        assert not (path / "second.txt").exists()


def test_the_next_checkout_reuses_the_slot_and_removes_what_the_last_run_left(tmp_path, remote, mirror):
    first, second = two_commits(remote, mirror)
    worktrees = tmp_path / "wt"
    with mirror.checkout(worktrees, first) as path:
        (path / "junk.txt").write_text("left by a test run\n")
        (path / "build").mkdir()
        (path / "build" / "out.o").write_text("x")
        (path / ".gitignore").write_text("*.pyc\n")
        (path / "cache.pyc").write_text("x")
        (path / "calc.py").write_text("broken by a test run\n")
        first_path = path
    with mirror.checkout(worktrees, second) as path:
        assert path == first_path
        assert head_of(path) == second
        assert status_of(path) == ""
        assert not (path / "junk.txt").exists() and not (path / "build").exists()
        assert not (path / "cache.pyc").exists()
        assert (path / "calc.py").read_text().startswith("def add")
        assert (path / "second.txt").read_text() == "2\n"


def test_checkouts_at_the_same_time_get_their_own_slots(tmp_path, remote, mirror):
    first, second = two_commits(remote, mirror)
    with mirror.checkout(tmp_path / "wt", first) as one, mirror.checkout(tmp_path / "wt", second) as two:
        assert one != two
        assert (head_of(one), head_of(two)) == (first, second)


def test_checkout_recovers_from_a_stale_index_lock(tmp_path, remote, mirror):
    first, second = two_commits(remote, mirror)
    with mirror.checkout(tmp_path / "wt", first) as path:
        gitdir = Path(git("rev-parse", "--absolute-git-dir", cwd=path))
    (gitdir / "index.lock").write_text("")  # a job crashed mid-checkout
    with mirror.checkout(tmp_path / "wt", second) as path:
        assert head_of(path) == second
        assert status_of(path) == ""


def test_checkout_recovers_from_a_half_written_slot(tmp_path, remote, mirror):
    first, _ = two_commits(remote, mirror)
    slot = tmp_path / "wt" / "slot-0"
    slot.mkdir(parents=True)
    (slot / "partial.txt").write_text("not a git worktree\n")
    with mirror.checkout(tmp_path / "wt", first) as path:
        assert path == slot
        assert head_of(path) == first
        assert not (path / "partial.txt").exists()
        assert status_of(path) == ""


def test_checkout_recovers_when_a_registered_slot_lost_its_git_file(tmp_path, remote, mirror):
    first, second = two_commits(remote, mirror)
    with mirror.checkout(tmp_path / "wt", first) as path:
        pass
    shutil.rmtree(path)
    path.mkdir()
    (path / "half.txt").write_text("x")
    with mirror.checkout(tmp_path / "wt", second) as again:
        assert again == path
        assert head_of(again) == second
        assert not (again / "half.txt").exists()


def test_a_slot_left_by_another_mirror_is_made_again_for_this_one(tmp_path, remote, mirror):
    """A deploy slot is named by the environment's id; when that id names a new environment
    (the old row deleted) of another repository, the slot on disk is the other mirror's."""
    other_remote = Remote(tmp_path / "other")
    other = Mirror(tmp_path / "mirrors" / "other.git", other_remote.url, allow_local=True)
    other.fetch()
    theirs = other.branch_head("master")
    assert theirs
    with other.checkout(tmp_path / "wt", theirs) as path:
        assert head_of(path) == theirs
    _, ours = two_commits(remote, mirror)  # a commit the other mirror does not have
    with mirror.checkout(tmp_path / "wt", ours) as again:
        assert again == path
        assert head_of(again) == ours
        assert status_of(again) == ""
    # The other mirror can take the slot back the same way.
    with other.checkout(tmp_path / "wt", theirs) as back:
        assert head_of(back) == theirs


def test_a_worktree_given_back_is_taken_by_the_next_run_and_only_changed_files_are_written(tmp_path, remote, mirror):
    first, second = two_commits(remote, mirror)
    spares = tmp_path / "spares"
    with mirror.checkout(tmp_path / "job-1", first, spares) as path:
        (path / "junk.txt").write_text("left by the run\n")
        (path / "calc.py").write_text("broken by the run\n")
        readme = (path / "README").stat().st_ino
    mirror.give_back(path, spares)
    assert not path.exists() and len(list(spares.iterdir())) == 1
    with mirror.checkout(tmp_path / "job-2", second, spares) as again:
        assert again == tmp_path / "job-2" / "slot-0"
        assert head_of(again) == second and status_of(again) == ""
        assert (again / "README").stat().st_ino == readme  # the same worktree, not written again
        assert not (again / "junk.txt").exists()
        assert (again / "calc.py").read_text().startswith("def add")
        assert (again / "second.txt").read_text() == "2\n"
    assert list(spares.iterdir()) == []
    listed = git("worktree", "list", "--porcelain", cwd=mirror.path)
    assert f"worktree {again}" in listed and str(path) not in listed


def test_a_given_back_worktree_whose_record_was_pruned_is_replaced_by_a_fresh_one(tmp_path, remote, mirror):
    first, second = two_commits(remote, mirror)
    spares = tmp_path / "spares"
    with mirror.checkout(tmp_path / "job-1", first, spares) as path:
        pass
    mirror.give_back(path, spares)
    [spare] = list(spares.iterdir())
    gitdir = Path((spare / ".git").read_text().partition("gitdir:")[2].strip())
    shutil.rmtree(gitdir)  # git's record of it is gone (pruned, or the mirror rebuilt)
    with mirror.checkout(tmp_path / "job-2", second, spares) as again:
        assert head_of(again) == second and status_of(again) == ""


def test_giving_back_keeps_at_most_the_slot_count(tmp_path, remote, mirror):
    first, _ = two_commits(remote, mirror)
    spares = tmp_path / "spares"
    paths = []
    for n in range(WORKTREE_SLOTS + 2):
        with mirror.checkout(tmp_path / f"job-{n}", first) as path:
            paths.append(path)
    for path in paths:
        mirror.give_back(path, spares)
    assert len(list(spares.iterdir())) == WORKTREE_SLOTS
    assert not any(p.exists() for p in paths)


def test_checkout_takes_only_full_commit_shas(tmp_path, mirror):
    for rev in ["master", "HEAD", mirror.branch_head("master")[:12], "--output=/tmp/x", "-f"]:
        with pytest.raises(ValueError, match="not a full commit SHA"), mirror.checkout(tmp_path / "wt", rev):
            pass


def test_checkout_of_a_commit_the_mirror_does_not_have_fails(tmp_path, mirror):
    with pytest.raises(GitError), mirror.checkout(tmp_path / "wt", "1" * 40):
        pass


def test_the_slots_are_finite(tmp_path, mirror):

    master = mirror.branch_head("master")
    with contextlib.ExitStack() as stack:
        for _ in range(WORKTREE_SLOTS):
            stack.enter_context(mirror.checkout(tmp_path / "wt", master))
        with pytest.raises(GitError, match="slots are busy"), mirror.checkout(tmp_path / "wt", master):
            pass


# -- hostile values through every call site ------------------------------------------------------

OPTION_REVS = ["--output={out}", "-o{out}", "--all", "-c", "--upload-pack=touch {out}", "-"]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "written-by-git"


def revs(out: Path) -> list[str]:
    return [rev.format(out=out) for rev in OPTION_REVS]


def test_resolve_treats_option_shaped_revisions_as_missing(mirror, out):
    for rev in revs(out):
        assert mirror.resolve(rev) is None
        assert mirror.branch_head(rev) is None
    assert not out.exists()


# Every call that takes a revision, with `rev` once in each position it can take.
REVISION_CALLS = {
    "is_ancestor(rev, master)": lambda m, rev, master: m.is_ancestor(rev, master),
    "is_ancestor(master, rev)": lambda m, rev, master: m.is_ancestor(master, rev),
    "count_between(rev, master)": lambda m, rev, master: m.count_between(rev, master),
    "count_between(master, rev)": lambda m, rev, master: m.count_between(master, rev),
    "merge(rev, master)": lambda m, rev, master: m.merge(rev, master),
    "merge(master, rev)": lambda m, rev, master: m.merge(master, rev),
    "commits_between(None, rev)": lambda m, rev, master: m.commits_between(None, rev),  # "--all" = every branch
    "commits_between(rev, master)": lambda m, rev, master: m.commits_between(rev, master),
    "tree_of(rev)": lambda m, rev, master: m.tree_of(rev),
    "commit_tree(tree=rev)": lambda m, rev, master: m.commit_tree(
        rev, [master], "m", author=BOT, committer=BOT, timestamp=WHEN
    ),
}


@pytest.mark.parametrize("call", REVISION_CALLS.values(), ids=REVISION_CALLS.keys())
def test_option_shaped_revisions_fail_as_git_errors_and_write_nothing(mirror, out, call):
    master = mirror.branch_head("master")
    for rev in revs(out):
        with pytest.raises(GitError):
            call(mirror, rev, master)
    assert not out.exists()


@pytest.mark.parametrize("ref", ["-c", "--force", "--delete", "--mirror", "--upload-pack=touch x", "refs/heads/a..b"])
def test_a_push_to_an_option_shaped_ref_changes_nothing(remote, mirror, ref):
    before = remote_refs(remote)
    with pytest.raises(GitError):
        mirror.push([RefUpdate(ref, mirror.branch_head("staging"), None)])
    assert remote_refs(remote) == before


def test_a_hostile_tag_name_cannot_smuggle_headers_into_the_tag_object(mirror):
    master = mirror.branch_head("master")
    with pytest.raises(GitError):
        mirror.make_tag("v1.0.0\ntagger Evil <e@x> 0 +0000", master, "m", tagger=BOT, timestamp=WHEN)


def test_git_commands_ignore_hooks_in_the_mirror(remote, mirror, tmp_path):
    marker = tmp_path / "hook-ran"
    hook = mirror.path / "hooks" / "reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    remote.commit_on("staging", {"x.txt": "x\n"}, "x")
    mirror.fetch()
    assert not marker.exists()


def test_git_errors_keep_what_git_said(mirror):
    with pytest.raises(GitError) as failed:
        mirror.count_between("refs/heads/nope", "refs/heads/master")
    assert failed.value.returncode == 128
    assert "refs/heads/nope" in failed.value.output
    assert "refs/heads/nope" in str(failed.value)


def test_the_mirror_never_reads_the_users_git_config(tmp_path, remote, monkeypatch):
    # A global config that rewrites URLs would send the fetch elsewhere.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f'[url "{tmp_path}/nowhere"]\n\tinsteadOf = {remote.url}\n')
    monkeypatch.setenv("HOME", str(home))
    mirror = Mirror(tmp_path / "m.git", remote.url, allow_local=True)
    mirror.fetch()
    assert mirror.branch_head("master") == remote.head("master")


def test_a_stray_git_dir_in_the_workers_environment_does_not_redirect_the_mirror(tmp_path, remote, monkeypatch):
    # A worker started from a git hook inherits GIT_DIR. run_git drops GIT_* variables;
    # BUG: gitpython.Repo.init in Mirror.ensure does not, so the mirror is never created.
    elsewhere = tmp_path / "elsewhere.git"
    subprocess.run(["git", "init", "-q", "--bare", str(elsewhere)], check=True)
    monkeypatch.setenv("GIT_DIR", str(elsewhere))
    mirror = Mirror(tmp_path / "m.git", remote.url, allow_local=True)
    mirror.fetch()
    master = mirror.branch_head("master")
    assert master and master == remote.head("master")
    assert [c.sha for c in mirror.commits_between(None, master)] == [master]
