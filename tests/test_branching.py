"""The branch model: the rules table, branch kinds, branch names and release versions.

Pure functions, no git and no database: every test here runs in microseconds.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from releaseboard.branching import (
    RULES,
    BranchKind,
    BranchNames,
    InvalidBranchName,
    Version,
    bump_for,
    can_create_from,
    can_promote,
    check_branch_name,
    classify,
    full_name,
    git_accepts_branch_name,
    latest_version,
    parse_tag,
    validate_short_name,
)

MASTER, STAGING, FEATURE, HOTFIX = BranchKind.MASTER, BranchKind.STAGING, BranchKind.FEATURE, BranchKind.HOTFIX
ALL_PAIRS = list(itertools.product(BranchKind, BranchKind))
DEFAULT = BranchNames()
MAIN_TEAM = BranchNames(master="main", feature_prefix="feat/")


# -- the rules table -----------------------------------------------------------------------


def test_the_rules_table_covers_every_branch_kind():
    assert set(RULES) == set(BranchKind)
    assert all(rule.kind is kind for kind, rule in RULES.items())


CREATED_FROM = {(FEATURE, STAGING), (HOTFIX, STAGING), (STAGING, MASTER)}


@pytest.mark.parametrize(("kind", "source"), ALL_PAIRS)
def test_a_branch_is_created_only_from_the_branch_the_model_names(kind, source):
    # feature and hotfix from staging only; staging from master; master from nothing.
    assert can_create_from(kind, source) is ((kind, source) in CREATED_FROM)


PROMOTED_TO = {(FEATURE, STAGING), (HOTFIX, STAGING), (STAGING, MASTER)}


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS)
def test_a_branch_is_promoted_only_into_the_branch_above_it(source, target):
    assert can_promote(source, target) is ((source, target) in PROMOTED_TO)


def test_master_is_promoted_nowhere_and_created_from_nothing():
    assert RULES[MASTER].promoted_to is None
    assert RULES[MASTER].created_from is None
    assert not any(can_promote(MASTER, target) for target in BranchKind)


def test_feature_and_hotfix_never_skip_staging_on_the_way_to_master():
    assert not can_promote(FEATURE, MASTER)
    assert not can_promote(HOTFIX, MASTER)
    assert not can_create_from(FEATURE, MASTER)
    assert not can_create_from(HOTFIX, MASTER)


def test_only_feature_and_hotfix_branches_are_the_developers_and_come_in_many():
    assert {k for k, r in RULES.items() if r.editable_by_developers} == {FEATURE, HOTFIX}
    assert {k for k, r in RULES.items() if r.many_open} == {FEATURE, HOTFIX}


# -- classify ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("branch", "kind"),
    [
        ("master", MASTER),
        ("staging", STAGING),
        ("feature/login", FEATURE),
        ("feature/team/login", FEATURE),
        ("hotfix/crash-on-save", HOTFIX),
        ("feature/", None),  # a prefix alone is no branch
        ("hotfix/", None),
        ("features/login", None),
        ("feature-login", None),
        ("release/1.0", None),
        ("main", None),
        ("Master", None),
        ("refs/heads/master", None),
        ("", None),
    ],
)
def test_classify_with_the_default_names(branch, kind):
    assert classify(DEFAULT, branch) is kind


@pytest.mark.parametrize(
    ("branch", "kind"),
    [
        ("main", MASTER),
        ("master", None),  # this team's master is "main"; "master" is just a branch
        ("staging", STAGING),
        ("feat/login", FEATURE),
        ("feature/login", None),
        ("feat/", None),
        ("hotfix/urgent", HOTFIX),
    ],
)
def test_classify_with_a_team_whose_master_is_main_and_features_are_feat(branch, kind):
    assert classify(MAIN_TEAM, branch) is kind


def test_master_and_staging_have_no_prefix():
    for kind in (MASTER, STAGING):
        with pytest.raises(ValueError, match="no prefix"):
            DEFAULT.prefix(kind)


# -- branch names --------------------------------------------------------------------------

GOOD_NAMES = [
    "login",
    "login-form",
    "jira-123",
    "0day",
    "v2.0",
    "snake_case",
    "team/login",
    "team.a/login-form_2",
    "a",
    "a" * 100,
]


@pytest.mark.parametrize("short", GOOD_NAMES)
def test_plain_names_are_accepted(short):
    validate_short_name(short)
    assert full_name(DEFAULT, FEATURE, short) == "feature/" + short
    assert full_name(DEFAULT, HOTFIX, short) == "hotfix/" + short
    assert full_name(MAIN_TEAM, FEATURE, short) == "feat/" + short


HOSTILE_NAMES = [
    "-x",
    "--upload-pack=touch /tmp/pwned",
    "--output=/tmp/x",
    "..",
    "a..b",
    "a/../b",
    "@{-1}",
    "a@{u}",
    "a~1",
    "a^",
    "a^{tree}",
    "a:b",
    "a b",
    " login",
    "a\tb",
    "a\nb",
    "a\rb",
    "a\x00b",
    "a\x1bb",
    "a\x7fb",
    "f\u0435ature",  # Cyrillic е
    "\uff4cogin",  # fullwidth ｌ
    "caf\u00e9",
    "login\u200b",  # zero-width space
    "refs/heads/master",
    "refs/tags/v1.0.0",
    "$(id)",
    "`id`",
    "a;b",
    "a|b",
    "a&b",
    "a>b",
    "a*",
    "a?",
    "a[b]",
    "a\\b",
    "'a'",
    '"a"',
    "a" * 101,
    "a" * 300,
    "login.lock",
    "login/",
    "/login",
    "a//b",
    ".hidden",
    "a/.hidden",
    "login.",
    "Login",
    "HEAD",
    "head",
    "master",
    "main",
    "staging",
    "heads/x",
    "tags/x",
    "remotes/origin/x",
    "refs",
    "",
]


@pytest.mark.parametrize("short", HOSTILE_NAMES)
def test_hostile_names_are_refused_with_a_message_for_people(short):
    with pytest.raises(InvalidBranchName) as refused:
        validate_short_name(short)
    message = str(refused.value)
    # One sentence or two for a person: no regex, no traceback, no repr of the input.
    assert message.endswith(".") and "\n" not in message, message
    assert "[a-z" not in message and "Error" not in message and "\\x" not in message


@pytest.mark.parametrize("short", HOSTILE_NAMES)
def test_full_name_refuses_what_validate_refuses(short):
    with pytest.raises(InvalidBranchName):
        full_name(DEFAULT, FEATURE, short)


def test_an_empty_name_asks_for_one():
    with pytest.raises(InvalidBranchName, match="Give the branch a name"):
        validate_short_name("")


def test_a_long_name_says_the_limit():
    with pytest.raises(InvalidBranchName, match="at most 100 characters"):
        validate_short_name("a" * 300)


def test_a_name_with_shell_or_git_syntax_says_which_characters_are_allowed():
    with pytest.raises(InvalidBranchName, match="lowercase letters, digits") as refused:
        validate_short_name("$(id)")
    assert "e.g. 'login-form'" in str(refused.value)


def test_a_reserved_name_is_named_in_the_refusal():
    with pytest.raises(InvalidBranchName, match="'staging' is reserved"):
        validate_short_name("staging")
    with pytest.raises(InvalidBranchName, match="'master' is reserved"):
        validate_short_name("master/x")


def test_dot_dot_and_lock_endings_say_so():
    with pytest.raises(InvalidBranchName, match=r"'\.\.'"):
        validate_short_name("a..b")
    with pytest.raises(InvalidBranchName, match=r"'\.lock'"):
        validate_short_name("login.lock")


def test_a_trailing_newline_is_refused():
    # BUG: the pattern ends in "$", which also matches just before a final "\n".
    with pytest.raises(InvalidBranchName):
        validate_short_name("login\n")


def test_a_path_component_ending_in_lock_is_refused():
    # BUG: git refuses any component ending in ".lock" (feature/a.lock/b is not a
    # valid ref), but only the end of the whole name is checked.
    with pytest.raises(InvalidBranchName, match=r"\.lock"):
        validate_short_name("a.lock/b")


# -- git's own rules, without running git ----------------------------------------------------

# Plain pieces, and pieces that each hit one of git's rules.
PLAIN_PIECES = [*"abcxyzAZ019_-./@{}", "feature/", "login", "\u00e9", "\u0435"]
HOSTILE_PIECES = [
    *"~^:?*[\\ \t\n\x01\x1b\x7f",
    "..",
    "@{",
    "@{-1}",
    ".lock",
    "/.",
    "//",
    "HEAD",
    "refs/heads/",
    "\u200b",
    "\uff4c",
    "\U0001f600",
]
HOSTILE_REFNAMES = [
    *HOSTILE_NAMES,
    "@",
    "a/@",
    "@/a",
    "-",
    "a/-b",
    "a/",
    "a.",
    "a/.",
    "a/..",
    ".",
    "a.lock/b",
    "a/b.lock",
    "a.lock.",
    "lock",
    ".lock",
    "a@{",
    "a@b",
    "a{b}",
    "HEAD",
    "a/HEAD",
    "HEAD/a",
    "x" * 1000,
    "\u00e9/\u00e9",
    "a\x7f",
    "a\x1f",
    "a\x20",
    "feature//x",
    "feature/x/",
    "feature/.x",
]


def generated_refnames(count: int, seed: int = 20260901) -> list[str]:
    """Names built from the pieces at random (seeded, so a failure can be replayed)."""
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < count:
        pieces = [rng.choice(PLAIN_PIECES) for _ in range(rng.randint(1, 8))]
        # Half the names get hostile pieces too, at random places.
        for _ in range(rng.choice([0, 0, 1, 2])):
            pieces.insert(rng.randint(0, len(pieces)), rng.choice(HOSTILE_PIECES))
        names.add("".join(pieces))
    return sorted(names)


def real_git_accepts(names: list[str], cwd: Path) -> dict[str, bool]:
    """`git check-ref-format --branch` on each name, outside any repository."""
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(cwd.parent), "LC_ALL": "C"}

    def accepts(name: str) -> bool:
        proc = subprocess.run(["git", "check-ref-format", "--branch", name], cwd=cwd, env=env, capture_output=True)
        return proc.returncode == 0

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(names, pool.map(accepts, names), strict=True))


def test_the_python_rules_agree_with_git_check_ref_format_on_thousands_of_names(tmp_path):
    names = sorted(set(generated_refnames(2500)) | {n for n in HOSTILE_REFNAMES if "\x00" not in n})
    git_says = real_git_accepts(names, tmp_path)
    disagreements = {name: accepted for name, accepted in git_says.items() if git_accepts_branch_name(name) != accepted}
    assert disagreements == {}, f"git's verdict where Python differs: {disagreements}"
    # Both verdicts occur often, so the comparison means something.
    assert 300 < sum(git_says.values()) < len(names) - 300
    # The product's check adds the model's refusals; it never accepts what git refuses.
    assert not [name for name in names if check_branch_name(name) and not git_says[name]]


@pytest.mark.parametrize("name", ["a\x00b", "\x00", "feature/x\x00"])
def test_a_nul_byte_is_refused_without_asking_git(name):
    # argv cannot carry a NUL byte, so real git cannot be asked; the rules refuse it.
    assert not git_accepts_branch_name(name)
    assert not check_branch_name(name)


@pytest.mark.parametrize("name", ["@", "a/-b", "-x/a", "feature/-x"])
def test_the_products_check_refuses_what_git_lets_through_but_tools_misread(name):
    assert not check_branch_name(name)


@pytest.mark.parametrize("name", ["master", "main", "staging", "feature/x", "hotfix/a.b_c-d", "release/2.0", "a@b"])
def test_the_products_check_accepts_plain_branch_names(name):
    assert check_branch_name(name) and git_accepts_branch_name(name)


@pytest.mark.parametrize("short", [*GOOD_NAMES, *generated_refnames(300, seed=7)])
def test_every_short_name_the_model_accepts_makes_a_full_name_git_accepts(short):
    try:
        full = full_name(MAIN_TEAM, FEATURE, short)
    except InvalidBranchName:
        return
    assert check_branch_name(full) and git_accepts_branch_name(full)


# -- versions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("1.2.3", Version(1, 2, 3)),
        ("v1.2.3", Version(1, 2, 3)),
        ("0.0.0", Version(0, 0, 0)),
        ("10.20.30", Version(10, 20, 30)),
        (" v2.0.1 ", Version(2, 0, 1)),
    ],
)
def test_version_parse_reads_release_numbers(text, version):
    assert Version.parse(text) == version


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v",
        "1",
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-rc1",
        "1.2.3+build",
        "vv1.2.3",
        "V1.2.3",
        "v 1.2.3",
        "-1.2.3",
        "a.b.c",
        "1..3",
        "\u0661.2.3",
    ],
)
def test_version_parse_refuses_anything_but_three_plain_numbers(text):
    with pytest.raises(ValueError, match="is not a version like 1.4.0"):
        Version.parse(text)


def test_version_prints_as_numbers_and_tags_with_a_v():
    version = Version(1, 4, 0)
    assert str(version) == "1.4.0"
    assert version.tag == "v1.4.0"
    assert Version.parse(version.tag) == version


def test_versions_order_by_number_not_by_text():
    assert Version(1, 10, 0) > Version(1, 9, 9)
    assert Version(2, 0, 0) > Version(1, 99, 99)
    assert sorted([Version(1, 0, 10), Version(1, 0, 2)]) == [Version(1, 0, 2), Version(1, 0, 10)]


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("v1.2.3", Version(1, 2, 3)),
        ("v0.1.0", Version(0, 1, 0)),
        ("1.2.3", None),  # releases are tagged with a "v"
        ("release-1.2.3", None),
        ("v1.2", None),
        ("v1.2.3-rc1", None),
        ("vnext", None),
        ("latest", None),
        ("", None),
    ],
)
def test_parse_tag_finds_releases_and_ignores_other_tags(tag, version):
    assert parse_tag(tag) == version


def test_latest_version_ignores_tags_that_are_not_releases():
    tags = ["v1.2.0", "v1.10.0", "v1.9.3", "v9.9", "v2.0.0-rc1", "release-7.0.0", "7.0.0", "deploy-2024", "vnext"]
    assert latest_version(tags) == Version(1, 10, 0)


def test_latest_version_is_zero_without_releases():
    assert latest_version([]) == Version(0, 0, 0)
    assert latest_version(["nightly", "v1", "1.0.0"]) == Version(0, 0, 0)


def test_a_release_with_a_feature_bumps_the_minor_version():
    assert bump_for(Version(1, 4, 2), [HOTFIX, FEATURE, HOTFIX]) == Version(1, 5, 0)


def test_a_release_of_hotfixes_only_bumps_the_patch_version():
    assert bump_for(Version(1, 4, 2), [HOTFIX, HOTFIX]) == Version(1, 4, 3)


def test_a_release_with_nothing_classified_bumps_the_patch_version():
    assert bump_for(Version(1, 4, 2), []) == Version(1, 4, 3)


@pytest.mark.parametrize("kinds", [[], [FEATURE], [HOTFIX], [FEATURE, HOTFIX], list(BranchKind)])
def test_a_major_bump_is_never_proposed(kinds):
    current = Version(3, 7, 1)
    assert bump_for(current, kinds).major == current.major
    # bump_for takes any iterable, once.
    assert bump_for(current, iter(kinds)) == bump_for(current, kinds)


def test_the_first_release_is_proposed_from_zero():
    assert bump_for(latest_version([]), [FEATURE]).tag == "v0.1.0"


# -- the request path runs no git -------------------------------------------------------------


def test_repository_settings_are_checked_without_running_git(tmp_path, monkeypatch, settings):
    from releaseboard.releases import services
    from releaseboard.releases.models import Repository

    settings.ALLOW_LOCAL_REPOSITORIES = True
    monkeypatch.setenv("PATH", str(tmp_path))  # no git (nor anything else) to be found
    good = Repository(name="shop", remote_url="/srv/git/shop.git", master_branch="main", test_command="true")
    services.validate_repository(good)
    bad = Repository(name="shop", remote_url="/srv/git/shop.git", staging_branch="stag..ing", test_command="true")
    with pytest.raises(services.Refused, match="not accept"):
        services.validate_repository(bad)
