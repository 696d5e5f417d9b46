"""The board's poller costs a few hundred bytes when nothing changed, and gets the new
region as soon as anything it shows did."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from bench.dataset import grow, repository
from releaseboard.audit.service import record
from releaseboard.jobs.models import Job, JobState
from releaseboard.releases.models import Branch, BranchState, Promotion

pytestmark = pytest.mark.django_db

T = TypeVar("T")


def _in_one_minute(step: Callable[[], T]) -> T:
    """Runs `step` until one run fell inside a single wall-clock minute. The token covers
    the minute (for "5 minutes ago"), so a run that crossed one rightly sees a change."""
    for _ in range(3):
        minute = int(time.time() // 60)
        result = step()
        if int(time.time() // 60) == minute:
            return result
    raise AssertionError("three runs in a row crossed a minute")


def _poll(client: Client, url: str, token: str) -> Any:
    return client.get(url, {"since": token}, HTTP_HX_REQUEST="true")


def _token(response: Any) -> str:
    found = re.search(r'id="board"[^>]*hx-get="[^"]*\?since=([0-9a-f]+)"', response.content.decode())
    assert found, "the board region carries its change token in its poll URL"
    return found.group(1)


@pytest.fixture
def board(client: Client, release_manager: Any) -> tuple[Client, str, Any]:
    repo = repository("shop")
    grow(repo, release_manager)
    client.force_login(release_manager)
    return client, reverse("web:board", args=[repo.name]), repo


def test_an_unchanged_board_answers_the_poller_with_an_empty_204(board: tuple[Client, str, Any]) -> None:
    client, url, _ = board

    def load_then_poll() -> Any:
        page = client.get(url)
        assert page.status_code == 200
        return _poll(client, url, _token(page))

    response = _in_one_minute(load_then_poll)
    assert response.status_code == 204 and response.content == b""
    assert sum(len(k) + len(v) for k, v in response.items()) < 600, "a few hundred bytes of headers at most"


@pytest.mark.parametrize(
    "change",
    [
        "branch head moved",
        "promotion tested",
        "job started",
        "audit event (lock, freeze, drift)",
        "branch deleted on the remote",
    ],
)
def test_any_change_the_board_shows_sends_the_new_region(board: tuple[Client, str, Any], change: str) -> None:
    client, url, repo = board
    token = _token(client.get(url))
    branch = Branch.objects.filter(repository=repo, state=BranchState.ACTIVE).order_by("id").first()
    assert branch is not None
    if change == "branch head moved":
        Branch.objects.filter(pk=branch.pk).update(head_sha="f" * 40)
    elif change == "promotion tested":
        promotion = Promotion.objects.filter(repository=repo, state="open").first()
        assert promotion is not None
        Promotion.objects.filter(pk=promotion.pk).update(merge_sha="e" * 40)
    elif change == "job started":
        Job.objects.create(kind="sync", title="Refresh", state=JobState.RUNNING, scope_id=repo.pk, scope_name=repo.name)
    elif change == "audit event (lock, freeze, drift)":
        with transaction.atomic():
            record("policy.locked", actor=None, repository=repo)
    else:
        Branch.objects.filter(pk=branch.pk).update(state=BranchState.GONE)

    def poll_twice() -> tuple[Any, Any]:
        response = _poll(client, url, token)
        return response, _poll(client, url, _token(response))

    response, again = _in_one_minute(poll_twice)
    assert response.status_code == 200
    assert 'id="board"' in response.content.decode() and _token(response) != token
    assert again.status_code == 204


def test_a_poll_with_an_old_token_from_another_user_gets_the_region(
    board: tuple[Client, str, Any], developer: Any
) -> None:
    client, url, _ = board
    token = _token(client.get(url))
    client.force_login(developer)
    assert _poll(client, url, token).status_code == 200, "roles decide the buttons: another user's token is stale"
