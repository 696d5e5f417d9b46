"""Ops filter the audit log, page through it by seq, and export it as CSV or JSON Lines."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest
from django.db import connection, transaction
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from releaseboard.audit import chain
from releaseboard.audit.service import record
from releaseboard.releases.models import Repository

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(developer: Any, release_manager: Any) -> Repository:
    shop = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    other = Repository.objects.create(name="other", remote_url="/srv/git/other.git", test_command="true")
    with transaction.atomic():
        record("branch.requested", actor=developer, repository=shop, message='=HYPERLINK("http://x")')
        record("release.requested", actor=release_manager, repository=shop, from_sha="a" * 40, to_sha="b" * 40)
        record("branch.requested", actor=developer, repository=other, details={"é": [1, 2]})
    return shop


def exported(client: Client, kind: str, **filters: Any) -> str:
    response = client.get(reverse(f"web:audit_export_{kind}"), filters)
    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    return response.getvalue().decode()


def jsonl(client: Client, **filters: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in exported(client, "jsonl", **filters).splitlines()]


def listed(client: Client, **filters: Any) -> list[int]:
    return [e.seq for e in client.get(reverse("web:audit_list"), filters).context["page"]]


def test_list_and_exports_apply_the_same_filters(client: Client, shop: Repository, ops: Any) -> None:
    client.force_login(ops)
    today = timezone.localdate()
    cases: list[tuple[dict[str, Any], list[int]]] = [
        ({}, [3, 2, 1]),
        ({"repository": shop.pk}, [2, 1]),
        ({"actor": "dev"}, [3, 1]),
        ({"action": "release.requested"}, [2]),
        ({"date_from": today.isoformat(), "date_to": today.isoformat()}, [3, 2, 1]),
        ({"date_from": (today + dt.timedelta(days=1)).isoformat()}, []),
        ({"date_to": (today - dt.timedelta(days=1)).isoformat()}, []),
        ({"actor": "dev", "repository": shop.pk, "date_from": today.isoformat()}, [1]),
    ]
    for filters, seqs in cases:
        assert listed(client, **filters) == seqs, filters
        assert [row["seq"] for row in jsonl(client, **filters)] == sorted(seqs), filters
        rows = list(csv.DictReader(io.StringIO(exported(client, "csv", **filters))))
        assert [int(row["seq"]) for row in rows] == sorted(seqs), filters


def test_invalid_filters_export_nothing(client: Client, shop: Repository, ops: Any) -> None:
    client.force_login(ops)
    response = client.get(reverse("web:audit_export_csv"), {"date_from": "2026-02-30"})
    assert response.status_code == 400
    response = client.get(reverse("web:audit_export_jsonl"), {"date_from": "2026-03-02", "date_to": "2026-03-01"})
    assert response.status_code == 400 and b"start date is after the end date" in response.content
    assert listed(client, date_from="yesterday") == []


def test_csv_cells_cannot_run_as_spreadsheet_formulas(client: Client, shop: Repository, ops: Any) -> None:
    client.force_login(ops)
    rows = list(csv.DictReader(io.StringIO(exported(client, "csv"))))
    assert rows[0]["message"] == '\'=HYPERLINK("http://x")'
    assert json.loads(rows[2]["details"]) == {"é": [1, 2]}


def test_a_full_json_lines_export_can_be_verified_off_the_host(client: Client, shop: Repository, ops: Any) -> None:
    client.force_login(ops)
    prev = chain.GENESIS
    for row in jsonl(client):
        content = row | {"created_at": dt.datetime.fromisoformat(row["created_at"])}
        assert row["prev_hash"] == prev
        assert chain.event_hash(content, prev) == row["hash"]
        prev = row["hash"]
    assert prev == jsonl(client)[-1]["hash"]


def test_the_list_pages_by_seq_without_offset(client: Client, ops: Any) -> None:
    with transaction.atomic():
        for n in range(120):
            record("job.started", actor=None, message=f"{n}")
    client.force_login(ops)
    with CaptureQueriesContext(connection) as queries:
        first = client.get(reverse("web:audit_list")).context["page"]
    assert not any("OFFSET" in q["sql"].upper() for q in queries.captured_queries)
    assert [e.seq for e in first] == list(range(120, 70, -1))
    assert first.newer_after is None and first.older_before == 71
    second = client.get(reverse("web:audit_list"), {"before": 71}).context["page"]
    assert [e.seq for e in second] == list(range(70, 20, -1))
    assert (second.newer_after, second.older_before) == (70, 21)
    last = client.get(reverse("web:audit_list"), {"before": 21}).context["page"]
    assert [e.seq for e in last] == list(range(20, 0, -1)) and last.older_before is None
    back = client.get(reverse("web:audit_list"), {"after": 70}).context["page"]
    assert [e.seq for e in back] == list(range(120, 70, -1)) and back.newer_after is None
    page = client.get(reverse("web:audit_list"), {"before": 71}).content.decode()
    assert "?before=21" in page and "?after=70" in page


def test_a_filtered_list_pages_within_the_filter(client: Client, shop: Repository, ops: Any) -> None:
    with transaction.atomic():
        for n in range(60):
            record("job.started", actor=None, repository=shop if n % 2 else None, message=f"{n}")
    client.force_login(ops)
    first = client.get(reverse("web:audit_list"), {"repository": shop.pk}).context["page"]
    assert len(first) == 32 and all(e.repository_name == "shop" for e in first)
    assert first.older_before is None
    page = client.get(reverse("web:audit_list"), {"action": "job.started"})
    assert len(page.context["page"]) == 50
    assert f"action=job.started&amp;before={page.context['page'].older_before}" in page.content.decode()
