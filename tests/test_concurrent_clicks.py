"""Two people pressing the same button at the same moment start one job (issue 14, item 3).

Each test lines up two real requests (or service calls) on two threads, each with its
own database connection, at the same moment: a third connection holds the row the use
case changes (PostgreSQL: SELECT ... FOR UPDATE; SQLite: the IMMEDIATE transaction holds
the database's write lock) until both callers have passed their checks and wait on it.
Then it lets go. Without a lock or a conditional UPDATE inside the use case, both
callers would write; with it, the second sees what the first did.

Run these on PostgreSQL too: DATABASE_URL=postgres://... pytest tests/test_concurrent_clicks.py
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse

from releaseboard.jobs.models import Job
from releaseboard.releases import services
from releaseboard.releases.models import Branch, Promotion, PromotionState, Release
from releaseboard.roles import Role
from tests.conftest import _user, run_jobs
from tests.flows import passed_promotion, sync

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 15


def _waiting_on_locks() -> int:
    """PostgreSQL: how many sessions on this test's database wait for a lock right now."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else it reads the same view all transaction long
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


@contextlib.contextmanager
def held(model: Any, pk: int) -> Iterator[None]:
    """Hold the row's write lock (and on SQLite the database's) on this thread's connection."""
    with transaction.atomic():
        model.objects.select_for_update().get(pk=pk)
        yield


def at_the_same_moment(model: Any, pk: int, *calls: Callable[[], Any]) -> list[Any]:
    """Run the calls on their own threads while the row is held, release it once all of
    them wait for it, and return what each returned (or raised)."""
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            results[i] = call()
        except Exception as exc:  # the result is checked by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    with held(model, pk):
        for thread in threads:
            thread.start()
        if connection.vendor == "postgresql":
            deadline = time.monotonic() + WAIT_SECONDS
            while _waiting_on_locks() < len(calls) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _waiting_on_locks() >= len(calls), "both callers should be waiting for the row"
        else:
            time.sleep(1.5)  # SQLite shows no lock waits; the callers only read before they wait
        assert all(thread.is_alive() for thread in threads), "a caller did not wait for the held row"
    for thread in threads:
        thread.join(WAIT_SECONDS)
    return results


@pytest.fixture
def second_manager(db: None) -> Any:
    return _user("rm2", Role.RELEASE_MANAGER)


def test_two_release_managers_pressing_promote_at_once_start_one_promote_job(
    repository, remote, developer, release_manager, second_manager
):
    sync(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "twice")
    url = reverse("web:promotion_promote", args=[repository.name, promotion.pk])
    clients = []
    for user in (release_manager, second_manager):
        client = Client()
        client.force_login(user)
        clients.append(client)

    responses = at_the_same_moment(Promotion, promotion.pk, *(lambda c=c: c.post(url) for c in clients))

    assert [r.status_code for r in responses] == [302, 302], responses
    assert Job.objects.filter(kind="promote", subject_id=promotion.pk).count() == 1
    assert Promotion.objects.get(pk=promotion.pk).state == PromotionState.PROMOTING
    for client in clients:
        page = client.get(reverse("web:promotion_detail", args=[repository.name, promotion.pk])).content.decode()
        assert "Promoting" in page
        assert "is promoting." not in page  # neither click was refused
    run_jobs()
    assert Promotion.objects.get(pk=promotion.pk).state == PromotionState.PROMOTED


def test_two_retest_clicks_at_once_queue_one_test(repository, remote, developer, release_manager):
    sync(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "again")

    first, second = at_the_same_moment(
        Promotion,
        promotion.pk,
        lambda: services.retest_promotion(Promotion.objects.get(pk=promotion.pk), actor=developer),
        lambda: services.retest_promotion(Promotion.objects.get(pk=promotion.pk), actor=release_manager),
    )

    assert isinstance(first, Job) and isinstance(second, Job), (first, second)
    assert first.pk == second.pk
    assert Job.objects.filter(kind="test_promotion", subject_id=promotion.pk, state="queued").count() == 1


def test_two_promotion_requests_for_one_branch_at_once_open_one_promotion(repository, remote, developer):
    sync(repository, developer)
    branch = services.request_branch(repository, actor=developer, kind="feature", name="dup", purpose="work")
    run_jobs()
    remote.commit_on(branch.name, {"dup.py": "D = 1\n"}, "Work")
    sync(repository, developer)

    results = at_the_same_moment(
        Branch,
        branch.pk,
        *(
            lambda t=t: services.request_promotion(Branch.objects.get(pk=branch.pk), actor=developer, title=t)
            for t in ("one", "two")
        ),
    )

    assert Promotion.objects.filter(branch=branch).count() == 1
    refused = [r for r in results if isinstance(r, services.Refused)]
    assert len(refused) == 1 and "already has an open promotion" in refused[0].message


def test_two_copy_master_clicks_at_once_start_one_copy(repository, remote, developer, release_manager, second_manager):
    sync(repository, developer)

    first, second = at_the_same_moment(
        type(repository),
        repository.pk,
        lambda: services.copy_master_to_staging(repository, actor=release_manager),
        lambda: services.copy_master_to_staging(repository, actor=second_manager),
    )

    assert isinstance(first, Job) and isinstance(second, Job), (first, second)
    assert first.pk == second.pk
    assert Job.objects.filter(kind="copy_master").count() == 1


def test_two_release_clicks_at_once_make_one_release(repository, remote, developer, release_manager, second_manager):
    sync(repository, developer)
    services.promote(passed_promotion(repository, remote, developer, "shipped"), actor=release_manager)
    run_jobs()
    repository.refresh_from_db()

    first, second = at_the_same_moment(
        type(repository),
        repository.pk,
        lambda: services.promote_to_master(repository, actor=release_manager, version="1.0.0", notes=""),
        lambda: services.promote_to_master(repository, actor=second_manager, version="1.0.0", notes=""),
    )

    assert isinstance(first, Release) and isinstance(second, Release), (first, second)
    assert first.pk == second.pk
    assert Release.objects.count() == 1
    assert Job.objects.filter(kind="release").count() == 1


def test_two_retries_of_a_failed_branch_creation_at_once_start_one_job(repository, release_manager, second_manager):
    branch = Branch.objects.create(
        repository=repository, name="feature/x", kind="feature", state="failed", requested_by=release_manager
    )
    failed = Job.objects.create(
        kind="create_branch",
        title="Create feature/x",
        state="failed",
        scope_id=repository.pk,
        subject_type="branch",
        subject_id=branch.pk,
        params={"branch": branch.pk},
    )

    first, second = at_the_same_moment(
        Branch,
        branch.pk,
        lambda: services.retry_job(Job.objects.get(pk=failed.pk), actor=release_manager),
        lambda: services.retry_job(Job.objects.get(pk=failed.pk), actor=second_manager),
    )

    assert isinstance(first, Job) and isinstance(second, Job), (first, second)
    assert first.pk == second.pk
    assert Job.objects.filter(kind="create_branch").exclude(pk=failed.pk).count() == 1
