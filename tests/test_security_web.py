"""The web layer under attack: response headers and the CSP on every page, stored XSS in
every page and htmx fragment, CSRF through htmx, and the sign-in lockout."""

from __future__ import annotations

import json
import re
from datetime import time, timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from releaseboard.audit.models import Checkpoint
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs.models import Job, JobLogLine, JobState, JobStep
from releaseboard.policy.models import DriftAlarm, FreezeWindow, HotfixException, Lock
from releaseboard.radar.models import PairMerge
from releaseboard.releases.models import (
    Branch,
    BranchState,
    MergeCheck,
    Promotion,
    PromotionState,
    Release,
    ReleaseState,
    Repository,
)
from tests import test_views_access
from tests.conftest import PASSWORD
from tests.test_views_access import TABLE, url_for

objects = test_views_access.objects  # the access tests' fixture: one of everything a URL can point at

# -- headers and Content-Security-Policy on every page ------------------------------------

# Every GET row of the access table, opened by a superuser (who may open all of them).
PAGES = sorted({(row[0], row[2], row[3]) for row in TABLE if row[1] == "get"})
# What a superuser gets where it is not a page: the admin's sign-in sends a signed-in
# admin on, repositories are never deleted, and a few admin URLs have nothing to show.
NOT_A_PAGE = {
    "logout": 405,
    "admin:login": 302,
    "admin:<model>_object": 302,
    "admin:<model>_delete": 403,
    "admin:autocomplete": 403,
    "admin:view_on_site": 404,
    "admin:catch_all": 404,
    "web:favicon": 302,  # to the static file
}


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


def csp_of(response: Any) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_security_headers(response: Any) -> None:
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    csp = csp_of(response)
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert csp["script-src"][0] == "'self'"
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]


@pytest.mark.parametrize(("key", "htmx", "needs"), PAGES, ids=[f"{k}{'-htmx' if h else ''}" for k, h, _ in PAGES])
def test_every_page_sends_the_security_headers_and_a_nonce_csp(
    client: Client, superuser: User, objects: dict[str, Any], key: str, htmx: bool, needs: str
) -> None:
    client.force_login(superuser)
    response = client.get(url_for(key, needs, objects), headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code == NOT_A_PAGE.get(key, 200)
    assert_security_headers(response)
    if response.status_code != 200 or htmx or not response["Content-Type"].startswith("text/html"):
        return
    html = response.content.decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    if key.startswith("web:") or key == "login":
        # Our own pages load htmx, with this response's nonce, and nothing inline.
        nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
        assert nonce, response["Content-Security-Policy"]
        assert any(f'nonce="{nonce.group(1)}"' in tag and "htmx" in tag for tag in scripts), scripts
        config = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", html)
        assert config and json.loads(config.group(1))["allowEval"] is False
    for tag in scripts:
        # An inline script would need the nonce; every script here is a file or data.
        assert "src=" in tag or "application/json" in tag or "nonce=" in tag, tag
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"


def test_the_nonce_is_new_for_every_response(client: Client, superuser: User) -> None:
    client.force_login(superuser)
    first, second = (re.search(r"'nonce-([^']+)'", client.get("/")["Content-Security-Policy"]) for _ in "12")
    assert first and second and first.group(1) != second.group(1)


def test_htmx_sends_the_csrf_token_and_a_post_without_it_is_refused(developer: User, objects: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(developer)
    board = url_for("web:board", "repo", objects)
    refresh = url_for("web:repository_refresh", "repo", objects)
    html = client.get(board).content.decode()
    headers = json.loads(re.search(r"<body hx-headers='([^']+)'", html).group(1))  # type: ignore[union-attr]

    assert client.post(refresh, headers={"HX-Request": "true"}).status_code == 403
    assert client.post(refresh, headers={"HX-Request": "true", "X-CSRFToken": "forged" * 6}).status_code == 403
    assert client.post(refresh, headers={"HX-Request": "true", **headers}).status_code == 302


def test_cookies_are_http_only_and_same_site(client: Client, developer: User) -> None:
    client.get("/accounts/login/")
    response = client.post("/accounts/login/", {"username": developer.username, "password": PASSWORD})
    session = response.cookies["sessionid"]
    assert session["httponly"] and session["samesite"] == "Lax"
    assert not session["max-age"], "the session ends when the browser closes"
    assert client.session.get_expiry_age() == 8 * 3600


# -- stored XSS ----------------------------------------------------------------------------


def payload(field: str) -> str:
    return f'<script>alert("{field}")</script><img src=x onerror=alert("{field}")>'


FIELDS = (
    "commit-subject",
    "commit-author",
    "branch-purpose",
    "branch-name",
    "promotion-title",
    "promotion-description",
    "promotion-state",
    "conflict-file",
    "log-text",
    "job-title",
    "job-message",
    "step-name",
    "step-command",
    "audit-message",
    "sync-error",
    "release-notes",
    "release-message",
    "drift-subject",
    "drift-author",
    "lock-reason",
    "freeze-reason",
    "exception-reason",
    "radar-path",
    "radar-kind",
    "checkpoint-file",
    "checkpoint-author",
)
XSS_PAGES = [
    ("web:repository_list", False, ""),
    ("web:board", False, "repo"),
    ("web:board", True, "repo"),
    ("web:branch_detail", False, "branch"),
    ("web:promotion_request", False, "branch"),
    ("web:promotion_detail", False, "promotion"),
    ("web:promotion_detail", True, "promotion"),
    ("web:copy_master", False, "repo"),
    ("web:release_new", False, "repo"),
    ("web:release_list", False, "repo"),
    ("web:job_list", False, ""),
    ("web:job_attention", False, ""),
    ("web:job_detail", False, "job"),
    ("web:job_detail", True, "job"),
    ("web:job_log", True, "job"),
    ("web:audit_list", False, ""),
    ("web:audit_verify", False, ""),
    ("web:policy", False, "repo"),
    ("web:radar_cell", False, "radar"),
    ("web:radar_cell", True, "radar"),
]


def xss_url(key: str, needs: str, made: dict[str, Any]) -> str:
    if needs == "radar":  # the cell of the feature branch and staging, whose merge conflicts
        staging = Branch.objects.get(repository=made["repository"], name="staging")
        return reverse(key, args=[made["repository"].name, made["branch"].pk, staging.pk])
    return url_for(key, needs, made)


@pytest.fixture
def hostile(objects: dict[str, Any]) -> dict[str, Any]:
    """Every text a user, a commit or a test run can put on a page, as an XSS payload."""
    repository: Repository = objects["repository"]
    Repository.objects.filter(pk=repository.pk).update(
        sync_error=payload("sync-error"),
        staging_ahead=[
            {
                "sha": "d" * 40,
                "subject": payload("commit-subject"),
                "author": payload("commit-author"),
                "promotion": None,
            }
        ],
    )
    Branch.objects.filter(pk=objects["branch"].pk).update(
        purpose=payload("branch-purpose"), ticket_url="javascript:alert(document.cookie)"
    )
    Branch.objects.create(
        repository=repository,
        name="feature/" + payload("branch-name"),
        kind="feature",
        head_sha="e" * 40,
        state=BranchState.ACTIVE,
        ticket_url=" JavaScript:alert(1)",
    )
    Promotion.objects.filter(pk=objects["promotion"].pk).update(
        title=payload("promotion-title"),
        description=payload("promotion-description"),
        state=PromotionState.FAILED,
        state_message=payload("promotion-state"),
        merge_check=MergeCheck.CONFLICT,
        conflict_files=[payload("conflict-file")],
    )
    job: Job = objects["job"]
    Job.objects.filter(pk=job.pk).update(
        title=payload("job-title"), message=payload("job-message"), state=JobState.RUNNING, log_lines=1
    )
    Job.objects.create(
        kind="sync",
        title="Failed refresh",
        state=JobState.FAILED,
        message=payload("job-message"),
        scope_id=repository.pk,
        scope_name=repository.name,
    )
    JobLogLine.objects.create(job=job, seq=1, text=payload("log-text") + "\n")
    JobStep.objects.create(job=job, seq=1, name=payload("step-name"), command=payload("step-command"))
    Release.objects.create(
        repository=repository,
        version="1.0.0",
        tag="v1.0.0",
        sha="f" * 40,
        notes=payload("release-notes"),
        state=ReleaseState.FAILED,
        state_message=payload("release-message"),
    )
    now = timezone.now()
    DriftAlarm.objects.create(
        repository=repository,
        branch_name="staging",
        expected_sha="b" * 40,
        found_sha="9" * 40,
        commits=[
            {"sha": "9" * 40, "subject": payload("drift-subject"), "author": payload("drift-author"), "email": ""}
        ],
        detected_at=now,
    )
    Lock.objects.create(repository=repository, reason=payload("lock-reason"), locked_at=now)
    FreezeWindow.objects.create(
        repository=repository,
        weekdays=[0],
        start=time(9),
        end=time(17),
        time_zone="UTC",
        reason=payload("freeze-reason"),
    )
    HotfixException.objects.create(promotion=objects["promotion"], reason=payload("exception-reason"), requested_at=now)
    # A conflict's path comes from the repository's files, its kind from git's message.
    PairMerge.objects.create(
        repository=repository,
        low_sha="b" * 40,
        high_sha="c" * 40,
        conflicts=[{"path": payload("radar-path"), "kind": payload("radar-kind")}],
    )
    # A checkpoint row whose file is missing: the verification page names it in a problem.
    Checkpoint.objects.create(
        created_at=now,
        seq=1,
        count=1,
        head_hash="0" * 64,
        file_name=payload("checkpoint-file"),
        signature="0" * 64,
        created_by=payload("checkpoint-author"),
    )
    with transaction.atomic():
        audit_record(
            "branch.requested",
            actor=None,
            repository=repository,
            obj=objects["branch"],
            message=payload("audit-message"),
        )
    return objects


def test_payloads_are_shown_escaped_on_every_page_and_fragment(
    client: Client, superuser: User, hostile: dict[str, Any]
) -> None:
    client.force_login(superuser)
    seen: dict[str, list[str]] = {field: [] for field in FIELDS}
    for key, htmx, needs in XSS_PAGES:
        url = xss_url(key, needs, hostile)
        response = client.get(url, headers={"HX-Request": "true"} if htmx else {})
        assert response.status_code == 200, url
        html = response.content.decode()
        where = f"{url}{' (htmx)' if htmx else ''}"
        assert "<script>alert" not in html, where
        assert "<img src=x" not in html, where
        assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", html, re.I), where
        for field in FIELDS:
            # Escaped by the template engine (&lt;script&gt;) or by linebreaks/urlize.
            if f"&lt;script&gt;alert(&quot;{field}&quot;)" in html:
                seen[field].append(where)
    # Each payload was really rendered somewhere, so its absence above means escaping.
    assert {field for field, pages in seen.items() if not pages} == set(), seen
    # The fragments themselves: the board's, the job summary's and the live log's.
    fragment_hits = {page for pages in seen.values() for page in pages if page.endswith("(htmx)")}
    job = hostile["job"]
    assert {f"/jobs/{job.pk}/log/ (htmx)", f"/jobs/{job.pk}/ (htmx)", "/r/shop/ (htmx)"} <= fragment_hits
    radar_cell = xss_url("web:radar_cell", "radar", hostile)
    assert f"{radar_cell} (htmx)" in seen["radar-path"] and radar_cell in seen["radar-kind"]
    assert "/audit/verify/" in seen["checkpoint-file"]
    # The drift banner is on every page, the repository list included.
    assert "/" in seen["drift-author"]
    assert {"/r/shop/policy/"} <= set(seen["drift-subject"]) & set(seen["lock-reason"]) & set(seen["exception-reason"])


def test_a_javascript_ticket_link_is_shown_as_text_not_as_a_link(
    client: Client, superuser: User, hostile: dict[str, Any]
) -> None:
    client.force_login(superuser)
    html = client.get(url_for("web:branch_detail", "branch", hostile)).content.decode()
    assert "javascript:alert(document.cookie)" in html
    assert '<a href="javascript' not in html.lower()


# -- sign-in lockout -------------------------------------------------------------------------


def sign_in(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def fail(client: Client, username: str, times: int, **extra: str) -> None:
    """Wrong passwords: the form comes back with an error, and the fifth locks."""
    for attempt in range(1, times + 1):
        assert sign_in(client, username, "wrong-password", **extra).status_code == (429 if attempt >= 5 else 200)


def test_five_wrong_passwords_lock_the_user_out_from_that_address(client: Client, developer: User) -> None:
    fail(client, developer.username, 5, REMOTE_ADDR="203.0.113.7")
    response = sign_in(client, developer.username, PASSWORD, REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 429
    text = response.content.decode()
    assert "Sign-in locked" in text and "Try again after" in text and "in 15 minutes" in text
    assert response["Retry-After"] == str(15 * 60)
    assert "_auth_user_id" not in client.session
    assert_security_headers(response)


def test_a_lockout_does_not_lock_the_user_out_from_elsewhere(client: Client, developer: User) -> None:
    fail(client, developer.username, 5, REMOTE_ADDR="203.0.113.7")
    assert sign_in(client, developer.username, PASSWORD, REMOTE_ADDR="198.51.100.2").status_code == 302


def test_a_forged_forwarded_for_header_does_not_get_around_the_lockout(client: Client, developer: User) -> None:
    """No proxy configured: X-Forwarded-For comes from the client and is ignored."""
    for i in range(1, 6):
        assert sign_in(
            client, developer.username, "wrong", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}"
        ).status_code == (429 if i == 5 else 200)
    response = sign_in(
        client, developer.username, PASSWORD, REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="10.0.0.99"
    )
    assert response.status_code == 429


def test_behind_the_proxy_only_the_hop_the_proxy_added_counts(client: Client, developer: User, settings: Any) -> None:
    settings.BEHIND_TLS_PROXY = True
    proxy = {"REMOTE_ADDR": "172.18.0.5"}
    for i in range(1, 6):
        # The client prepends a forged address each time; the proxy appends the real one.
        assert sign_in(
            client, developer.username, "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}, 203.0.113.7", **proxy
        ).status_code == (429 if i == 5 else 200)
    assert (
        sign_in(client, developer.username, PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7", **proxy).status_code
        == 429
    )
    # Another real client behind the same proxy is not locked out.
    assert (
        sign_in(client, developer.username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.2", **proxy).status_code == 302
    )


def test_a_successful_sign_in_resets_the_count(client: Client, developer: User) -> None:
    fail(client, developer.username, 4)
    assert sign_in(client, developer.username, PASSWORD).status_code == 302
    client.logout()
    fail(client, developer.username, 4)
    assert sign_in(client, developer.username, PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(client: Client, developer: User) -> None:
    fail(client, developer.username, 5)
    assert sign_in(client, developer.username, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert sign_in(client, developer.username, PASSWORD).status_code == 302


def test_the_admin_sign_in_is_locked_out_as_well(client: Client, admin_user: User) -> None:
    for _ in range(5):
        client.post("/admin/login/", {"username": admin_user.username, "password": "wrong"})
    response = client.post("/admin/login/", {"username": admin_user.username, "password": PASSWORD})
    assert response.status_code == 429
