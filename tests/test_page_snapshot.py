"""A page shows one moment of the database (issue 14, item 5).

A real sync (a direct push to staging behind Releaseboard's back: new staging head and
a drift alarm, in one transaction) is committed by another thread, with its own
database connection, in the middle of a page's computation: right after the view read
its first part (the hook wraps one selector). The page must show the moment before the
sync throughout: old head, no banner. The next request shows the moment after: new head
and the banner. Run on PostgreSQL as well (DATABASE_URL=postgres://...).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from releaseboard.releases import selectors, services
from releaseboard.web.snapshot import one_moment
from tests.conftest import run_jobs
from tests.flows import passed_promotion, sync

pytestmark = pytest.mark.django_db(transaction=True)


def commit_in_another_connection(action: Callable[[], Any]) -> None:
    failure: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:
            failure.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    assert not failure, failure


def sync_commits_after(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[bool]:
    """Replace module.name with a wrapper that, after the real call, runs the queued sync
    job to its end on another connection. Returns a list that records each time it fired."""
    real = getattr(module, name)
    fired: list[bool] = []

    def hooked(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not fired:
            commit_in_another_connection(lambda: run_jobs(kind="sync"))
            fired.append(True)
        return result

    monkeypatch.setattr(module, name, hooked)
    return fired


def push_behind_our_back(repository: Any, remote: Any, developer: Any) -> tuple[str, str]:
    """Staging moved on the remote; the sync that will notice it is queued, not yet run."""
    sync(repository, developer)
    before = remote.head("staging")
    after = remote.commit_on("staging", {"direct.py": "D = 1\n"}, "Hot edit, pushed by hand")
    services.refresh(repository, actor=developer)
    return before[:10], after[:10]


@pytest.fixture
def pushed_behind_our_back(repository, remote, developer):
    return push_behind_our_back(repository, remote, developer)


def test_a_board_rendered_while_a_sync_commits_shows_the_moment_before_it(
    client: Client, monkeypatch, repository, developer, pushed_behind_our_back
):
    before, after = pushed_behind_our_back
    client.force_login(developer)
    url = reverse("web:board", args=[repository.name])
    fired = sync_commits_after(monkeypatch, selectors, "board")

    page = client.get(url).content.decode()

    assert fired
    assert before in page and after not in page
    assert "drift-alarm" not in page  # the banner of the sync's moment is not mixed in
    monkeypatch.undo()
    page = client.get(url).content.decode()
    assert after in page and "drift-alarm" in page


def test_a_promotion_page_rendered_while_a_sync_commits_shows_the_moment_before_it(
    client: Client, monkeypatch, repository, remote, developer
):
    sync(repository, developer)
    promotion = passed_promotion(repository, remote, developer, "steady")
    remote.commit_on("staging", {"direct.py": "D = 1\n"}, "Hot edit, pushed by hand")
    services.refresh(repository, actor=developer)
    client.force_login(developer)
    url = reverse("web:promotion_detail", args=[repository.name, promotion.pk])
    fired = sync_commits_after(monkeypatch, selectors, "jobs_for")

    page = client.get(url).content.decode()

    assert fired
    assert "drift-alarm" not in page
    monkeypatch.undo()
    assert "drift-alarm" in client.get(url).content.decode()


def test_reads_in_one_moment_do_not_see_a_commit_made_meanwhile(repository, remote, developer):
    """The helper itself, without a view: two reads of the staging head around a sync."""
    before, after = push_behind_our_back(repository, remote, developer)
    with one_moment():
        first = selectors.head(repository, "staging")
        commit_in_another_connection(lambda: run_jobs(kind="sync"))
        second = selectors.head(repository, "staging")
    assert first[:10] == second[:10] == before
    assert selectors.head(repository, "staging")[:10] == after
