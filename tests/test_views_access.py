"""Who may open what: every web: URL, for every persona.

Each row is one URL name, the method, which objects its URL needs, and the status each
persona gets. 302 for a POST means the action ran (or was refused with a message) and
redirected; 200 for a form POST means it was shown again with errors. Anonymous users
are always sent to the login page.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from releaseboard.jobs.models import Job
from releaseboard.releases.models import Branch, Promotion, Repository

PERSONAS = ("developer", "release_manager", "ops", "admin_user", "outsider")

# url name,                  method, needs,        dev  rm   ops  admin outsider
TABLE: list[tuple[str, str, str, int, int, int, int, int]] = [
    ("web:repository_list",    "get",  "",          200, 200, 200, 200, 403),
    ("web:board",              "get",  "repo",      200, 200, 200, 200, 403),
    ("web:repository_refresh", "post", "repo",      302, 302, 403, 302, 403),
    ("web:staging_test",       "post", "repo",      302, 302, 403, 403, 403),
    ("web:copy_master",        "get",  "repo",      403, 200, 403, 403, 403),
    ("web:copy_master",        "post", "repo",      403, 302, 403, 403, 403),
    ("web:branch_request",     "get",  "repo",      200, 200, 403, 403, 403),
    ("web:branch_request",     "post", "repo",      200, 200, 403, 403, 403),
    ("web:branch_detail",      "get",  "branch",    200, 200, 200, 200, 403),
    ("web:promotion_request",  "get",  "branch",    200, 200, 403, 403, 403),
    ("web:promotion_request",  "post", "branch",    200, 200, 403, 403, 403),
    ("web:promotion_detail",   "get",  "promotion", 200, 200, 200, 200, 403),
    ("web:promotion_retest",   "post", "promotion", 302, 302, 403, 403, 403),
    ("web:promotion_promote",  "post", "promotion", 403, 302, 403, 403, 403),
    ("web:release_new",        "get",  "repo",      403, 200, 403, 403, 403),
    ("web:release_new",        "post", "repo",      403, 200, 403, 403, 403),
    ("web:release_list",       "get",  "repo",      200, 200, 200, 200, 403),
    ("web:job_list",           "get",  "",          200, 200, 200, 200, 403),
    ("web:job_detail",         "get",  "job",       200, 200, 200, 200, 403),
    ("web:job_log",            "get",  "job",       200, 200, 200, 200, 403),
    ("web:job_cancel",         "post", "job",       403, 302, 403, 403, 403),
    ("web:job_attention",      "get",  "",          403, 200, 403, 403, 403),
    ("web:job_retry",          "post", "job",       403, 302, 403, 403, 403),
    ("web:audit_list",         "get",  "",          403, 200, 200, 200, 403),
]

CASES = [
    pytest.param(name, method, needs, persona, expected, id=f"{name}-{method}-{persona}")
    for name, method, needs, *statuses in TABLE
    for persona, expected in zip(PERSONAS, statuses, strict=True)
]


@pytest.fixture
def objects(db: None) -> dict[str, Any]:
    """One of everything a URL can point at. No job runs here, so no git remote is needed."""
    repository = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha="b" * 40)
    branch = Branch.objects.create(repository=repository, name="feature/login", kind="feature", head_sha="c" * 40)
    promotion = Promotion.objects.create(repository=repository, branch=branch, title="Login form")
    job = Job.objects.create(kind="sync", title="Refresh shop", scope_id=repository.pk, scope_name=repository.name)
    return {"repository": repository, "branch": branch, "promotion": promotion, "job": job}


def url_for(name: str, needs: str, objects: dict[str, Any]) -> str:
    repo = objects["repository"].name
    kwargs: dict[str, Any] = {
        "": {},
        "repo": {"repo": repo},
        "branch": {"repo": repo, "branch_id": objects["branch"].pk},
        "promotion": {"repo": repo, "promotion_id": objects["promotion"].pk},
        "job": {"job_id": objects["job"].pk},
    }[needs]
    return reverse(name, kwargs=kwargs)


@pytest.mark.parametrize(("name", "method", "needs", "persona", "expected"), CASES)
def test_persona_gets_expected_status(client: Client, request: pytest.FixtureRequest, objects: dict[str, Any],
                                      name: str, method: str, needs: str, persona: str, expected: int) -> None:
    client.force_login(request.getfixturevalue(persona))
    response = getattr(client, method)(url_for(name, needs, objects))
    assert response.status_code == expected


@pytest.mark.parametrize(("name", "method", "needs"), sorted({(row[0], row[1], row[2]) for row in TABLE}))
def test_anonymous_user_is_sent_to_login(client: Client, objects: dict[str, Any], name: str, method: str,
                                         needs: str) -> None:
    url = url_for(name, needs, objects)
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_table_covers_every_web_url() -> None:
    from releaseboard.web.urls import urlpatterns

    assert {f"web:{p.name}" for p in urlpatterns} == {row[0] for row in TABLE}


def test_post_only_actions_refuse_get(client: Client, release_manager: Any, objects: dict[str, Any]) -> None:
    client.force_login(release_manager)
    for name, needs in [("web:staging_test", "repo"), ("web:repository_refresh", "repo"), ("web:job_cancel", "job"),
                        ("web:promotion_promote", "promotion"), ("web:promotion_retest", "promotion")]:
        assert client.get(url_for(name, needs, objects)).status_code == 405, name
