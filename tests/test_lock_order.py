"""Jobs of one repository lock its rows in one order: branch rows (by id), then the
repository row. A job recording branch facts used to lock the repository row first while
another job of the same repository, recording fetched heads, held the branch rows and
waited for the repository row: PostgreSQL found the deadlock and failed a promote job
(seen with two workers, bench/throughput.py). On SQLite a write takes the whole database,
so only PostgreSQL shows the locks this test reads."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from releaseboard.releases import services
from releaseboard.releases.models import Branch, Promotion, Repository, lock_branch_rows
from tests.conftest import run_jobs
from tests.flows import requested_promotion, sync

pytestmark = pytest.mark.django_db

LOCK = re.compile(r'FROM "(\w+)".* FOR (NO KEY )?UPDATE', re.S)


def _locks(sql: list[str]) -> list[str]:
    return [m.group(1) for s in sql if (m := LOCK.search(s))]


def test_the_jobs_of_a_promotion_and_a_release_never_lock_the_repository_row_before_its_branch_rows(
    repository, remote, developer, release_manager
):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite locks the whole database on a write")
    sql: list[str] = []

    def jobs() -> None:  # only the jobs' statements: a click may lock the repository row alone
        with CaptureQueriesContext(connection) as captured:
            run_jobs()
        sql.extend(q["sql"] for q in captured.captured_queries)

    services.refresh(repository, actor=developer)
    jobs()
    promotion = requested_promotion(repository, remote, developer, "locks", run=jobs)
    jobs()
    services.promote(Promotion.objects.get(pk=promotion.pk), actor=release_manager)
    jobs()
    release = services.promote_to_master(repository, actor=release_manager, version="1.0.0", notes="")
    jobs()
    release.refresh_from_db()
    assert release.state == "released", release.state_message
    services.refresh(repository, actor=developer)
    jobs()

    locks = _locks(sql)
    assert "releases_branch" in locks  # heads, facts, the promotion and the release took them
    assert "releases_repository" not in locks
    branch_locks = [s for s in sql if LOCK.search(s) and '"releases_branch"' in s]
    assert all(_in_id_order(s) for s in branch_locks), [s for s in branch_locks if not _in_id_order(s)]


def _in_id_order(sql: str) -> bool:
    # Django orders a values_list() query by position: ORDER BY 1, its first column the id.
    by_position = sql.startswith('SELECT "releases_branch"."id"') and "ORDER BY 1 ASC" in sql
    return by_position or 'ORDER BY "releases_branch"."id"' in sql


def test_lock_branch_rows_returns_every_branch_of_the_repository_in_id_order(repository, developer):
    sync(repository, developer)
    other = Repository.objects.create(name="other", remote_url="/srv/other.git")
    Branch.objects.create(repository=other, name="master", kind="master", head_sha="a" * 40)
    rows = lock_branch_rows(repository)
    assert [b.pk for b in rows] == sorted(Branch.objects.filter(repository=repository).values_list("pk", flat=True))
    assert {b.repository_id for b in rows} == {repository.pk} and len(rows) >= 2
