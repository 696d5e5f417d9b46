"""`manage.py load_demo`: demo users for every role and a demo repository to play with.

Idempotent: run it as often as you like (`make run` runs it every time). It creates

* a group for every role, and the users developer, release-manager, ops and admin;
* a bare git repository var/demo/shop.git holding a tiny Python project whose branches
  show every outcome: a feature that passes, one whose tests fail, two that conflict with
  each other once one of them lands, and a hotfix;
* the Repository "shop" pointing at it, registered through the normal service (so an
  audit event is written and a sync job is queued for the worker);
* its staging and production environments and about 90 days of delivery history
  (`load_demo_environments`).

The password is RELEASEBOARD_DEMO_PASSWORD when set, else one generated on the first run
and kept in var/demo-password.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from releaseboard.releases import services
from releaseboard.releases.models import Repository
from releaseboard.roles import Role

REPOSITORY_NAME = "shop"
TEST_COMMAND = "python3 run_tests.py"
TEST_TIMEOUT = 120

# username -> the role it holds (admin is also staff and superuser).
DEMO_USERS: dict[str, Role] = {
    "developer": Role.DEVELOPER,
    "release-manager": Role.RELEASE_MANAGER,
    "ops": Role.OPS,
    "admin": Role.ADMIN,
}

AUTHORS = {
    "one": ("Dev One", "dev1@example.com"),
    "two": ("Dev Two", "dev2@example.com"),
    "three": ("Dev Three", "dev3@example.com"),
}

# --- the demo project ----------------------------------------------------------------
README = """\
# shop

A tiny demo project for Releaseboard. Run its tests with `python3 run_tests.py`
(or `python3 -m unittest -v`).
"""

# The demo's test command: unittest, plus the JUnit XML report Releaseboard reads for the
# failure summary on top of a job's log, written where $RELEASEBOARD_JUNIT_XML says.
RUN_TESTS = '''\
"""Run the shop's tests; write a JUnit XML report to $RELEASEBOARD_JUNIT_XML if it is set."""

import os
import sys
import unittest
from xml.sax.saxutils import escape, quoteattr


class Recorder(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.cases.append((test, "", ""))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.cases.append((test, "failure", self._exc_info_to_string(err, test)))

    def addError(self, test, err):
        super().addError(test, err)
        self.cases.append((test, "error", self._exc_info_to_string(err, test)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.cases.append((test, "skipped", reason))


def junit(cases):
    rows = []
    for test, kind, text in cases:
        classname = type(test).__module__ + "." + type(test).__name__
        name = getattr(test, "_testMethodName", str(test))
        head = f"<testcase classname={quoteattr(classname)} name={quoteattr(name)}"
        if kind in ("failure", "error"):
            message = text.strip().splitlines()[-1] if text.strip() else kind
            rows.append(f"{head}><{kind} message={quoteattr(message)}>{escape(text)}</{kind}></testcase>")
        elif kind == "skipped":
            rows.append(f"{head}><skipped message={quoteattr(text)}/></testcase>")
        else:
            rows.append(f"{head}/>")
    failures = sum(kind == "failure" for _, kind, _ in cases)
    errors = sum(kind == "error" for _, kind, _ in cases)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\\n'
        f'<testsuite name="shop" tests="{len(cases)}" failures="{failures}" errors="{errors}">\\n'
        + "\\n".join(rows)
        + "\\n</testsuite>\\n"
    )


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.discover(".")
    result = unittest.TextTestRunner(verbosity=2, resultclass=Recorder).run(suite)
    report = os.environ.get("RELEASEBOARD_JUNIT_XML")
    if report:
        with open(report, "w", encoding="utf-8") as handle:
            handle.write(junit(result.cases))
    sys.exit(0 if result.wasSuccessful() else 1)
'''

CART = '''\
"""A tiny shop cart. Prices are whole cents."""

TAX_RATE_PERCENT = 20


def subtotal(items):
    """Sum of price * quantity over (price, quantity) pairs."""
    return sum(price * quantity for price, quantity in items)


def tax(amount):
    """Tax on an amount, in whole cents (rounded down)."""
    return amount * TAX_RATE_PERCENT // 100
'''

CART_TOTAL = '''

def total(items):
    """What the customer pays, tax included."""
    amount = subtotal(items)
    return amount + tax(amount)
'''

TEST_CART = """\
import unittest

import cart


class CartTest(unittest.TestCase):
    def test_subtotal(self):
        self.assertEqual(cart.subtotal([(250, 2), (100, 1)]), 600)

    def test_tax(self):
        self.assertEqual(cart.tax(1000), 200)
"""

TEST_CART_TOTAL = """
    def test_total(self):
        self.assertEqual(cart.total([(250, 2), (100, 1)]), 720)
"""

CATALOG = '''\
"""Finding products by name."""


def search(names, query):
    """The names that contain the query, ignoring case, in their original order."""
    query = query.casefold()
    return [name for name in names if query in name.casefold()]
'''

TEST_CATALOG = """\
import unittest

import catalog


class CatalogTest(unittest.TestCase):
    def test_search_ignores_case(self):
        self.assertEqual(catalog.search(["Red mug", "Blue mug", "Teapot"], "MUG"), ["Red mug", "Blue mug"])

    def test_search_finds_nothing(self):
        self.assertEqual(catalog.search(["Teapot"], "spoon"), [])
"""

TEST_DISCOUNTS = """\
import unittest

import cart


class DiscountTest(unittest.TestCase):
    def test_ten_percent_off(self):
        self.assertEqual(cart.total([(1000, 1)], discount_percent=10), 1080)
"""

TEST_COUPONS = """\
import unittest

import cart


class CouponTest(unittest.TestCase):
    def test_coupon_comes_off_before_tax(self):
        self.assertEqual(cart.total([(1000, 1)], coupon_cents=250), 900)

    def test_coupon_never_makes_a_total_negative(self):
        self.assertEqual(cart.total([(100, 1)], coupon_cents=500), 0)
"""


def _branches(master_cart: str, master_tests: str) -> dict[str, tuple[str, str, dict[str, str]]]:
    """branch -> (author key, commit message, files to write), each made from master."""
    return {
        "feature/search": (
            "two",
            "Search the catalog by name",
            {"catalog.py": CATALOG, "test_catalog.py": TEST_CATALOG},
        ),
        # Quantities are forgotten: test_subtotal and test_total fail.
        "feature/broken-totals": (
            "three",
            "Simplify subtotals",
            {
                "cart.py": master_cart.replace(
                    "sum(price * quantity for price, quantity in items)", "sum(price for price, _quantity in items)"
                )
            },
        ),
        # discounts and coupons both rewrite the first lines of total(): each merges and
        # passes alone, and the second conflicts once the first has been promoted.
        "feature/discounts": (
            "one",
            "Percentage discounts on the total",
            {
                "cart.py": master_cart.replace(
                    'def total(items):\n    """What the customer pays, tax included."""\n'
                    "    amount = subtotal(items)\n",
                    'def total(items, discount_percent=0):\n    """What the customer pays, tax included."""\n'
                    "    amount = subtotal(items)\n    amount -= amount * discount_percent // 100\n",
                ),
                "test_discounts.py": TEST_DISCOUNTS,
            },
        ),
        "feature/coupons": (
            "two",
            "Coupons take cents off the total",
            {
                "cart.py": master_cart.replace(
                    'def total(items):\n    """What the customer pays, tax included."""\n'
                    "    amount = subtotal(items)\n",
                    'def total(items, coupon_cents=0):\n    """What the customer pays, tax included."""\n'
                    "    amount = max(subtotal(items) - coupon_cents, 0)\n",
                ),
                "test_coupons.py": TEST_COUPONS,
            },
        ),
        "hotfix/rounding": (
            "three",
            "Round tax half up instead of down",
            {
                "cart.py": master_cart.replace("(rounded down)", "(rounded half up)").replace(
                    "return amount * TAX_RATE_PERCENT // 100", "return (amount * TAX_RATE_PERCENT + 50) // 100"
                ),
                "test_cart.py": master_tests + "\n    def test_tax_rounds_half_up(self):\n"
                "        self.assertEqual(cart.tax(3), 1)\n",
            },
        ),
    }


BRANCHES = ["feature/search", "feature/broken-totals", "feature/discounts", "feature/coupons", "hotfix/rounding"]


def _git_env() -> dict[str, str]:
    """Plain git, untouched by the user's or the machine's git configuration."""
    env = dict(os.environ)
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    return env


def _git(*args: str, cwd: Path | None = None, author: str = "one") -> str:
    name, email = AUTHORS[author]
    env = _git_env()
    env.update(
        {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    )
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise CommandError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


def _commit(work: Path, files: dict[str, str], message: str, author: str) -> None:
    for name, text in files.items():
        (work / name).write_text(text)
        _git("add", "--", name, cwd=work)
    _git("commit", "-q", "--no-gpg-sign", "-m", message, cwd=work, author=author)


def build_demo_remote(bare: Path) -> None:
    """Write the demo bare repository at `bare` (which must not exist yet).

    Built next to it under a temporary name and renamed at the end, so an interrupted
    run never leaves a half-made repository behind.
    """
    bare.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".shop-build-", dir=bare.parent) as tmp:
        tmp_bare = Path(tmp) / "shop.git"
        work = Path(tmp) / "work"
        _git("init", "-q", "--bare", "-b", "master", str(tmp_bare))
        _git("init", "-q", "-b", "master", str(work))
        _git("remote", "add", "origin", str(tmp_bare), cwd=work)
        _commit(
            work,
            {"README.md": README, "run_tests.py": RUN_TESTS, "cart.py": CART, "test_cart.py": TEST_CART},
            "Start the shop: subtotals and tax",
            "one",
        )
        master_cart, master_tests = CART + CART_TOTAL, TEST_CART + TEST_CART_TOTAL
        _commit(work, {"cart.py": master_cart, "test_cart.py": master_tests}, "Add cart totals", "two")
        for branch, (author, message, files) in _branches(master_cart, master_tests).items():
            for name, text in files.items():
                if name == "cart.py" and text == master_cart:
                    raise AssertionError(f"the demo change for {branch} did not apply")
            _git("checkout", "-q", "-b", branch, "master", cwd=work)
            _commit(work, files, message, author)
        _git("push", "-q", "origin", "master", "master:staging", *BRANCHES, cwd=work)
        tmp_bare.rename(bare)


class Command(BaseCommand):
    help = "Create demo users for every role and a demo repository (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        var_dir = Path(settings.VAR_DIR)
        password, password_source = self._password(var_dir)
        with transaction.atomic():
            users = self._users(password, var_dir)
        bare = var_dir / "demo" / f"{REPOSITORY_NAME}.git"
        if not (bare / "refs" / "heads").is_dir() or not _git("--git-dir", str(bare), "branch", "--list", "master"):
            if bare.exists():
                raise CommandError(f"{bare} exists but is not the demo repository; move it away and run again.")
            build_demo_remote(bare)
            self.stdout.write(f"Created the demo git repository {bare}")
        self._repository(bare, users["admin"])
        # Its environments and a delivery history for the Metrics page (the deployments app's own command).
        call_command("load_demo_environments", repository=REPOSITORY_NAME, stdout=self.stdout)
        self._print_logins(password, password_source)

    def _password(self, var_dir: Path) -> tuple[str, str]:
        from_env = os.environ.get("RELEASEBOARD_DEMO_PASSWORD", "")
        if from_env:
            return from_env, "RELEASEBOARD_DEMO_PASSWORD"
        path = var_dir / "demo-password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(12) + "\n")
            path.chmod(0o600)
        password = path.read_text().strip()
        if not password:
            raise CommandError(f"{path} is empty; delete it to get a new demo password.")
        return password, str(path)

    def _users(self, password: str, var_dir: Path) -> dict[str, User]:
        groups = {role: Group.objects.get_or_create(name=role.value)[0] for role in Role}
        # Which password hash each user got from us last time: when it is unchanged and
        # the password is the same, skip check_password (slow by design) on every run.
        state_path = var_dir / "demo" / "logins.json"
        fingerprint = hashlib.sha256(password.encode()).hexdigest()
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError):
            state = {}
        known = state.get("hashes", {}) if state.get("password") == fingerprint else {}
        users = {}
        for username, role in DEMO_USERS.items():
            user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
            changed = created
            if username == "admin" and not (user.is_staff and user.is_superuser):
                user.is_staff = user.is_superuser = True
                changed = True
            if not user.is_active:
                user.is_active = True
                changed = True
            # The printed logins must work, so the demo password always wins.
            if created or (known.get(username) != user.password and not user.check_password(password)):
                user.set_password(password)
                changed = True
            if changed:
                user.save()
            user.groups.add(groups[role])
            users[username] = user
            self.stdout.write(f"{'Created' if created else 'Kept'} user {username} ({role.value})")
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(
            json.dumps({"password": fingerprint, "hashes": {name: user.password for name, user in users.items()}})
        )
        state_path.chmod(0o600)
        return users

    def _repository(self, bare: Path, admin: User) -> None:
        if Repository.objects.filter(name=REPOSITORY_NAME).exists():
            self.stdout.write(f"Kept repository {REPOSITORY_NAME}")
            return
        if not settings.ALLOW_LOCAL_REPOSITORIES:
            raise CommandError(
                "The demo repository is a local path; set RELEASEBOARD_ALLOW_LOCAL_REPOSITORIES=True "
                "to load the demo (never in production)."
            )
        repository = Repository(
            name=REPOSITORY_NAME, remote_url=str(bare), test_command=TEST_COMMAND, test_timeout=TEST_TIMEOUT
        )
        try:
            job = services.save_repository(repository, actor=admin)
        except services.Refused as exc:
            raise CommandError(f"Could not register the demo repository: {exc.message}") from None
        self.stdout.write(f"Registered repository {REPOSITORY_NAME} ({bare}); job #{job.pk} syncs it")

    def _print_logins(self, password: str, source: str) -> None:
        url = f"http://127.0.0.1:{os.environ.get('PORT') or '8000'}/"
        width, pw_width = max(len(name) for name in DEMO_USERS), max(len(password), len("password"))
        lines = [f"Releaseboard demo: {url}", "", f"  {'username':<{width}}  {'password':<{pw_width}}  role"]
        for username, role in DEMO_USERS.items():
            extra = " (superuser: also the Django admin at /admin/)" if username == "admin" else ""
            lines.append(f"  {username:<{width}}  {password:<{pw_width}}  {role.value}{extra}")
        lines += ["", f"(password from {source})"]
        self.stdout.write("\n".join(lines))
