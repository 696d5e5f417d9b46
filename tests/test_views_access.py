"""Who may open what: every URL pattern of the project, for every persona.

The table has one row per URL pattern (the Django admin's per-model URLs as one row per
family, tried on the repository admin), the method, whether htmx asks (HX-Request),
which objects its URL needs, and the status each persona gets. 302 for a POST means the
action ran (or was refused with a message) and redirected; 200 for a form POST means it
was shown again with errors. LOGIN means "sent to the sign-in page", ADMIN_LOGIN "sent
to the admin's sign-in page". `test_table_covers_every_url_pattern` walks the whole
resolver, so a new URL without a row fails the suite.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from releaseboard.deployments.models import Deployment, Environment, Incident
from releaseboard.integrations.models import Delivery, Subscription
from releaseboard.jobs.models import Job
from releaseboard.releases.models import Branch, Promotion, PromotionState, Repository
from releaseboard.review.models import PromotionReview
from releaseboard.roles import Role
from releaseboard.web.security import ADMIN_APPS

PERSONAS = ("anonymous", "developer", "release_manager", "ops", "admin_user", "outsider")
LOGIN = "login"
ADMIN_LOGIN = "admin-login"
ADMIN_INDEX = "admin-index"  # the admin's log-out sends those who may not enter to its index (then its sign-in)
R = "releases_repository"  # the model the admin families are tried on

# key, method, htmx, needs, then the status for: anonymous, developer, release manager, ops, admin, outsider
TABLE: list[tuple[str, str, bool, str, Any, Any, Any, Any, Any, Any]] = [
    ("web:repository_list", "get", False, "", LOGIN, 200, 200, 200, 200, 403),
    ("web:favicon", "get", False, "", 302, 302, 302, 302, 302, 302),
    ("web:board", "get", False, "repo", LOGIN, 200, 200, 200, 200, 403),
    ("web:board", "get", True, "repo", LOGIN, 200, 200, 200, 200, 403),
    ("web:repository_refresh", "post", False, "repo", LOGIN, 302, 302, 403, 302, 403),
    ("web:staging_test", "post", False, "repo", LOGIN, 302, 302, 403, 403, 403),
    ("web:copy_master", "get", False, "repo", LOGIN, 403, 200, 403, 403, 403),
    ("web:copy_master", "post", False, "repo", LOGIN, 403, 302, 403, 403, 403),
    ("web:branch_request", "get", False, "repo", LOGIN, 200, 200, 403, 403, 403),
    ("web:branch_request", "post", False, "repo", LOGIN, 200, 200, 403, 403, 403),
    ("web:branch_detail", "get", False, "branch", LOGIN, 200, 200, 200, 200, 403),
    # The developer persona owns the branch: its owner may update it and request its promotion.
    ("web:branch_update", "post", False, "branch", LOGIN, 302, 302, 403, 403, 403),
    ("web:promotion_request", "get", False, "branch", LOGIN, 200, 200, 403, 403, 403),
    ("web:promotion_request", "post", False, "branch", LOGIN, 200, 200, 403, 403, 403),
    ("web:promotion_detail", "get", False, "promotion", LOGIN, 200, 200, 200, 200, 403),
    ("web:promotion_file", "get", False, "file", LOGIN, 200, 200, 200, 200, 403),
    ("web:promotion_file", "get", True, "file", LOGIN, 200, 200, 200, 200, 403),
    ("web:promotion_detail", "get", True, "promotion", LOGIN, 200, 200, 200, 200, 403),
    ("web:promotion_retest", "post", False, "promotion", LOGIN, 302, 302, 403, 403, 403),
    ("web:promotion_retest", "post", True, "promotion", LOGIN, 302, 302, 403, 403, 403),
    ("web:promotion_promote", "post", False, "promotion", LOGIN, 403, 302, 403, 403, 403),
    ("web:promotion_promote", "post", True, "promotion", LOGIN, 403, 302, 403, 403, 403),
    ("web:radar_cell", "get", False, "pair", LOGIN, 200, 200, 200, 200, 403),
    ("web:radar_cell", "get", True, "pair", LOGIN, 200, 200, 200, 200, 403),
    ("web:release_new", "get", False, "repo", LOGIN, 403, 200, 403, 403, 403),
    ("web:release_new", "post", False, "repo", LOGIN, 403, 200, 403, 403, 403),
    ("web:release_list", "get", False, "repo", LOGIN, 200, 200, 200, 200, 403),
    ("web:policy", "get", False, "repo", LOGIN, 200, 200, 200, 200, 403),
    ("web:policy_lock", "post", False, "repo", LOGIN, 403, 302, 403, 403, 403),
    ("web:policy_unlock", "post", False, "repo", LOGIN, 403, 302, 403, 403, 403),
    ("web:freeze_window_add", "post", False, "repo", LOGIN, 403, 302, 403, 403, 403),
    ("web:exception_request", "post", False, "repo", LOGIN, 403, 302, 403, 403, 403),
    # No such alarm, window or exception: the role is checked first, so only a release manager learns that (404).
    ("web:drift_adopt", "post", False, "alarm", LOGIN, 403, 404, 403, 403, 403),
    ("web:freeze_window_remove", "post", False, "window", LOGIN, 403, 404, 403, 403, 403),
    ("web:exception_approve", "post", False, "exception", LOGIN, 403, 404, 403, 403, 403),
    ("web:job_list", "get", False, "", LOGIN, 200, 200, 200, 200, 403),
    ("web:job_detail", "get", False, "job", LOGIN, 200, 200, 200, 200, 403),
    ("web:job_detail", "get", True, "job", LOGIN, 200, 200, 200, 200, 403),
    ("web:job_log", "get", True, "job", LOGIN, 200, 200, 200, 200, 403),
    ("web:job_cancel", "post", False, "job", LOGIN, 403, 302, 403, 403, 403),
    ("web:job_cancel", "post", True, "job", LOGIN, 403, 302, 403, 403, 403),
    ("web:job_attention", "get", False, "", LOGIN, 403, 200, 403, 403, 403),
    ("web:job_retry", "post", False, "job", LOGIN, 403, 302, 403, 403, 403),
    ("web:audit_list", "get", False, "", LOGIN, 403, 200, 200, 200, 403),
    ("web:audit_verify", "get", False, "", LOGIN, 403, 200, 200, 200, 403),
    ("web:audit_verify", "get", True, "", LOGIN, 403, 200, 200, 200, 403),
    ("web:audit_verify_full", "post", False, "", LOGIN, 403, 302, 302, 302, 403),
    ("web:audit_checkpoint", "post", False, "", LOGIN, 403, 302, 302, 302, 403),
    ("web:audit_export_csv", "get", False, "", LOGIN, 403, 200, 200, 200, 403),
    ("web:audit_export_jsonl", "get", False, "", LOGIN, 403, 200, 200, 200, 403),
    # Webhooks: release managers (their repositories' subscriptions) and admins.
    ("web:webhook_list", "get", False, "", LOGIN, 403, 200, 403, 200, 403),
    ("web:webhook_list", "post", False, "", LOGIN, 403, 200, 403, 200, 403),
    ("web:webhook_detail", "get", False, "webhook", LOGIN, 403, 200, 403, 200, 403),
    ("web:webhook_action", "post", False, "webhook_action", LOGIN, 403, 302, 403, 302, 403),
    ("web:delivery_redeliver", "post", False, "delivery", LOGIN, 403, 302, 403, 302, 403),
    # Settings → Tokens: every signed-in user manages their own tokens (no such token: 404).
    ("tokens:token_list", "get", False, "", LOGIN, 200, 200, 200, 200, 200),
    ("tokens:token_list", "post", False, "", LOGIN, 200, 200, 200, 200, 200),
    ("tokens:token_revoke", "post", False, "token", LOGIN, 404, 404, 404, 404, 404),
    # Environments, deployments and incidents: deploying is for release managers and Ops
    # (the environment here is production); incidents are Ops' own.
    ("web:environment_list", "get", False, "repo", LOGIN, 200, 200, 200, 200, 403),
    ("web:environment_lane", "get", True, "repo", LOGIN, 200, 200, 200, 200, 403),
    ("web:environment_detail", "get", False, "env", LOGIN, 200, 200, 200, 200, 403),
    ("web:environment_deploy", "post", False, "env", LOGIN, 403, 302, 302, 403, 403),
    ("web:environment_rollback", "post", False, "env", LOGIN, 403, 302, 302, 403, 403),
    ("web:environment_redeploy", "post", False, "env", LOGIN, 403, 302, 302, 403, 403),
    ("web:environment_lock", "post", False, "env", LOGIN, 403, 302, 302, 403, 403),
    ("web:incident_open", "get", False, "deployment", LOGIN, 403, 403, 200, 403, 403),
    ("web:incident_open", "post", False, "deployment", LOGIN, 403, 403, 200, 403, 403),
    ("web:incident_close", "post", False, "incident", LOGIN, 403, 403, 302, 403, 403),
    ("web:metrics", "get", False, "repo", LOGIN, 200, 200, 200, 200, 403),
    ("web:metric_rows", "get", False, "metric", LOGIN, 200, 200, 200, 200, 403),
    ("web:metrics_all", "get", False, "", LOGIN, 200, 200, 200, 200, 403),
    ("web:metric_rows_all", "get", False, "metric_all", LOGIN, 200, 200, 200, 200, 403),
    # django.contrib.auth: signing in and out, and changing one's own password.
    ("login", "get", False, "", 200, 200, 200, 200, 200, 200),
    ("login", "post", False, "", 200, 200, 200, 200, 200, 200),
    ("logout", "get", False, "", 405, 405, 405, 405, 405, 405),
    ("logout", "post", False, "", 302, 302, 302, 302, 302, 302),
    ("password_change", "get", False, "", LOGIN, 200, 200, 200, 200, 200),
    ("password_change", "post", False, "", LOGIN, 200, 200, 200, 200, 200),
    ("password_change_done", "get", False, "", LOGIN, 200, 200, 200, 200, 200),
    # The Django admin: the Admin role (and superusers) only; everyone else is sent to
    # its sign-in page, which says they may not enter.
    ("admin:index", "get", False, "", ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, ADMIN_LOGIN),
    ("admin:login", "get", False, "", 200, 200, 200, 200, 302, 200),
    ("admin:logout", "post", False, "", ADMIN_INDEX, ADMIN_INDEX, ADMIN_INDEX, ADMIN_INDEX, 302, ADMIN_INDEX),
    ("admin:password_change", "get", False, "", ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, ADMIN_LOGIN),
    (
        "admin:password_change_done",
        "get",
        False,
        "",
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        200,
        ADMIN_LOGIN,
    ),
    ("admin:autocomplete", "get", False, "", ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 403, ADMIN_LOGIN),
    ("admin:jsi18n", "get", False, "", ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, ADMIN_LOGIN),
    (
        "admin:view_on_site",
        "get",
        False,
        "admin_site",
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        404,
        ADMIN_LOGIN,
    ),
    ("admin:app_list", "get", False, "admin_app", ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, ADMIN_LOGIN),
    (
        "admin:catch_all",
        "get",
        False,
        "admin_url",
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        404,
        ADMIN_LOGIN,
    ),
    (
        "admin:auth_user_password_change",
        "get",
        False,
        "admin_user",
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        200,
        ADMIN_LOGIN,
    ),
    (
        "admin:<model>_changelist",
        "get",
        False,
        "",
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        200,
        ADMIN_LOGIN,
    ),
    ("admin:<model>_add", "get", False, "", ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, ADMIN_LOGIN),
    (
        "admin:<model>_change",
        "get",
        False,
        "admin_obj",
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        200,
        ADMIN_LOGIN,
    ),
    (
        "admin:<model>_history",
        "get",
        False,
        "admin_obj",
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        200,
        ADMIN_LOGIN,
    ),
    # Repositories are never deleted (their audit events point at them).
    (
        "admin:<model>_delete",
        "get",
        False,
        "admin_obj",
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        403,
        ADMIN_LOGIN,
    ),
    (
        "admin:<model>_object",
        "get",
        False,
        "admin_obj",
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        ADMIN_LOGIN,
        302,
        ADMIN_LOGIN,
    ),
]

CASES = [
    pytest.param(key, method, htmx, needs, persona, expected, id=f"{key}-{method}{'-htmx' if htmx else ''}-{persona}")
    for key, method, htmx, needs, *statuses in TABLE
    for persona, expected in zip(PERSONAS, statuses, strict=True)
]
ADMIN_FAMILIES = ("changelist", "add", "change", "history", "delete")


def walk_urls(resolver: URLResolver | None = None, prefix: str = "", namespace: str = "") -> list[tuple[str, str]]:
    """Every URL pattern of the project as (qualified name or "", full route)."""
    found: list[tuple[str, str]] = []
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            found += walk_urls(pattern, prefix + str(pattern.pattern), inner)
        else:
            assert isinstance(pattern, URLPattern)
            found.append((namespace + pattern.name if pattern.name else "", prefix + str(pattern.pattern)))
    return found


def registered_admin_models() -> list[str]:
    return sorted(f"{m._meta.app_label}_{m._meta.model_name}" for m in admin.site._registry)


def table_key(name: str, route: str) -> str:
    """The row that covers a URL pattern: its name, or its admin family."""
    for model in registered_admin_models():
        app, _, model_name = model.partition("_")
        for family in ADMIN_FAMILIES:
            if name == f"admin:{model}_{family}":
                return f"admin:<model>_{family}"
        if not name and route == f"admin/{app}/{model_name}/<path:object_id>/":
            return "admin:<model>_object"
    if not name and route == "admin/(?P<url>.*)$":
        return "admin:catch_all"
    return name or route


@pytest.fixture
def objects(db: None, developer: User) -> dict[str, Any]:
    """One of everything a URL can point at. No job runs here, so no git remote is needed.
    The developer persona requested the branch (only its requester or a release manager
    may request its promotion)."""
    repository = Repository.objects.create(name="shop", remote_url="/srv/git/shop.git", test_command="true")
    Branch.objects.create(repository=repository, name="master", kind="master", head_sha="a" * 40)
    Branch.objects.create(repository=repository, name="staging", kind="staging", head_sha="b" * 40)
    branch = Branch.objects.create(
        repository=repository, name="feature/login", kind="feature", head_sha="c" * 40, requested_by=developer
    )
    promotion = Promotion.objects.create(repository=repository, branch=branch, title="Login form")
    file = {
        "path": "a.py",
        "added": 1,
        "deleted": 0,
        "binary": False,
        "patch": "@@ -0,0 +1 @@\n+A = 1\n",
        "omitted": "",
    }
    PromotionReview.objects.create(
        promotion=promotion, staging_sha="b" * 40, branch_sha="c" * 40, data={"commits": [], "files": [file]}
    )
    job = Job.objects.create(kind="sync", title="Refresh shop", scope_id=repository.pk, scope_name=repository.name)
    webhook = Subscription.objects.create(
        repository=repository, url="https://chat.example.com/hook", events=["branch.created"], secret="whsec_eA=="
    )
    delivery = Delivery.objects.create(subscription=webhook, message_id="msg_1", event_type="test.event", body="{}")
    environment = Environment.objects.create(
        repository=repository, name="production", tier="production", deploy_command="true"
    )
    deployment = Deployment.objects.create(
        environment=environment,
        repository=repository,
        tier="production",
        version="1.0.0",
        sha="a" * 40,
        state="succeeded",
        created_at=timezone.now(),
        finished_at=timezone.now(),
    )
    incident = Incident.objects.create(
        repository=repository, cause=deployment, started_at=timezone.now(), description="Checkout fails"
    )
    return {
        "repository": repository,
        "branch": branch,
        "promotion": promotion,
        "job": job,
        "webhook": webhook,
        "delivery": delivery,
        "environment": environment,
        "deployment": deployment,
        "incident": incident,
    }


def url_for(key: str, needs: str, objects: dict[str, Any]) -> str:
    repository = objects["repository"]
    if key.startswith("admin:<model>_"):
        name = key.replace("<model>", R)
        if key == "admin:<model>_object":
            return reverse("admin:releases_repository_change", args=[repository.pk]).removesuffix("change/")
    elif key == "admin:catch_all":
        return "/admin/no-such-page/"
    else:
        name = key
    kwargs: dict[str, Any] = {
        "": {},
        "repo": {"repo": repository.name},
        "branch": {"repo": repository.name, "branch_id": objects["branch"].pk},
        "promotion": {"repo": repository.name, "promotion_id": objects["promotion"].pk},
        "file": {"repo": repository.name, "promotion_id": objects["promotion"].pk, "index": 0},
        "pair": {"repo": repository.name, "branch_id": objects["branch"].pk, "other_id": objects["branch"].pk},
        "job": {"job_id": objects["job"].pk},
        "webhook": {"subscription_id": objects["webhook"].pk},
        "webhook_action": {"subscription_id": objects["webhook"].pk, "action": "disable"},
        "delivery": {"subscription_id": objects["webhook"].pk, "delivery_id": objects["delivery"].pk},
        "alarm": {"repo": repository.name, "alarm_id": 999999},
        "window": {"repo": repository.name, "window_id": 999999},
        "exception": {"repo": repository.name, "exception_id": 999999},
        "env": {"repo": repository.name, "env": "production"},
        "deployment": {"repo": repository.name, "deployment_id": objects["deployment"].pk},
        "incident": {"repo": repository.name, "incident_id": objects["incident"].pk},
        "metric": {"repo": repository.name, "metric": "failure_rate"},
        "metric_all": {"metric": "lead_median"},
        "admin_obj": {"object_id": repository.pk},
        "admin_site": {"content_type_id": ContentType.objects.get_for_model(Repository).pk, "object_id": repository.pk},
        "admin_app": {"app_label": "releases"},
        "token": {"token_id": 999999},
        "admin_user": {"id": getattr(User.objects.order_by("pk").first(), "pk", 1)},
    }[needs]
    return reverse(name, kwargs=kwargs)


def check_status(response: Any, expected: Any, url: str) -> None:
    if expected == LOGIN:
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), response["Location"]
    elif expected == ADMIN_LOGIN:
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), response["Location"]
    elif expected == ADMIN_INDEX:
        assert response.status_code == 302, url
        assert response["Location"] == "/admin/", response["Location"]
    else:
        assert response.status_code == expected, url


@pytest.mark.parametrize(("key", "method", "htmx", "needs", "persona", "expected"), CASES)
def test_persona_gets_expected_status(
    client: Client,
    request: pytest.FixtureRequest,
    objects: dict[str, Any],
    key: str,
    method: str,
    htmx: bool,
    needs: str,
    persona: str,
    expected: Any,
) -> None:
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    url = url_for(key, needs, objects)
    headers = {"HX-Request": "true"} if htmx else {}
    response = getattr(client, method)(url, headers=headers)
    check_status(response, expected, url)


def test_table_covers_every_url_pattern() -> None:
    """Walks the whole resolver (web, auth, admin): a pattern without a row fails, and so
    does a row whose pattern is gone."""
    # The JSON API has its own matrix (route × persona × token scope): tests/test_api_access.py.
    patterns = {table_key(name, route) for name, route in walk_urls() if not route.startswith("api/v1/")}
    rows = {row[0] for row in TABLE}
    assert patterns - rows == set(), "URL patterns without a row in the access table"
    assert rows - patterns == set(), "rows for URL patterns that no longer exist"


def test_every_admin_url_sends_non_admins_to_the_admin_sign_in(
    client: Client, request: pytest.FixtureRequest, objects: dict[str, Any]
) -> None:
    """Every concrete admin URL, of every registered model, not only the families' sample."""
    urls = []
    for name, route in walk_urls():
        if not route.startswith("admin/") or name == "admin:login":
            continue
        if name == "admin:app_list":
            urls += [
                reverse(name, kwargs={"app_label": label})
                for label in {m.split("_")[0] for m in registered_admin_models()}
            ]
        elif route == "admin/(?P<url>.*)$":
            urls.append("/admin/no-such-page/")
        else:
            url = "/" + route
            for param in ("<path:content_type_id>", "<path:object_id>", "<id>"):
                url = url.replace(param, "1")
            urls.append(url)
    assert len(urls) > 30
    staff_without_role = User.objects.create_user("staff", password="x", is_staff=True)
    for persona in ("developer", "release_manager", "ops", "outsider"):
        users = [request.getfixturevalue(persona)] + ([staff_without_role] if persona == "outsider" else [])
        for user in users:
            client.force_login(user)
            for url in urls:
                if url.endswith("/logout/"):
                    check_status(client.post(url), ADMIN_INDEX, f"{user.username} {url}")
                else:
                    check_status(client.get(url), ADMIN_LOGIN, f"{user.username} {url}")
    client.logout()
    for url in urls:
        if url.endswith("/logout/"):
            check_status(client.post(url), ADMIN_INDEX, f"anonymous {url}")
        else:
            check_status(client.get(url), ADMIN_LOGIN, f"anonymous {url}")


@pytest.mark.parametrize("model", registered_admin_models())
def test_admin_role_reaches_only_what_it_configures(
    client: Client, admin_user: User, objects: dict[str, Any], model: str
) -> None:
    """Repositories, users and roles, and sign-in lockouts: yes; audit events and jobs
    change only through the services, so the Admin role sees none of them here."""
    client.force_login(admin_user)
    response = client.get(reverse(f"admin:{model}_changelist"))
    assert response.status_code == (200 if model.split("_")[0] in ADMIN_APPS else 403)


def test_superuser_gets_into_the_admin_and_a_staff_flag_alone_does_not(client: Client, db: None) -> None:
    superuser = User.objects.create_superuser("root", "root@example.com", "x")
    staff = User.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(superuser)
    assert client.get("/admin/").status_code == 200
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_admin_sign_in_form_refuses_a_user_without_the_admin_role(client: Client, developer: User) -> None:
    from tests.conftest import PASSWORD

    developer.is_staff = True
    developer.save()
    response = client.post("/admin/login/", {"username": developer.username, "password": PASSWORD})
    assert response.status_code == 200
    assert "does not hold the Admin role" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    ("key", "method", "needs"),
    [
        ("web:branch_detail", "get", "branch"),
        ("web:promotion_request", "get", "branch"),
        ("web:promotion_request", "post", "branch"),
        ("web:promotion_detail", "get", "promotion"),
        ("web:promotion_retest", "post", "promotion"),
        ("web:promotion_promote", "post", "promotion"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_another_repositorys_objects_are_not_reachable_by_changing_the_name(
    client: Client, release_manager: User, objects: dict[str, Any], key: str, method: str, needs: str, htmx: bool
) -> None:
    """A branch or promotion of shop, asked for under /r/other/...: 404, and nothing changes."""
    other = Repository.objects.create(name="other", remote_url="/srv/git/other.git", test_command="true")
    client.force_login(release_manager)
    url = url_for(key, needs, objects).replace("/r/shop/", f"/r/{other.name}/")
    jobs_before = Job.objects.count()
    headers = {"HX-Request": "true"} if htmx else {}
    response = getattr(client, method)(url, {"title": "Hijack"} if method == "post" else None, headers=headers)
    assert response.status_code == 404, url
    assert Job.objects.count() == jobs_before
    assert Promotion.objects.get(pk=objects["promotion"].pk).state == PromotionState.OPEN
    assert not Promotion.objects.filter(title="Hijack").exists()


def test_a_removed_role_takes_effect_on_the_next_request(
    client: Client, developer: User, objects: dict[str, Any]
) -> None:
    board = url_for("web:board", "repo", objects)
    client.force_login(developer)
    assert client.get(board).status_code == 200
    developer.groups.remove(Group.objects.get(name=Role.DEVELOPER.value))
    assert client.get(board).status_code == 403
    assert client.get(board, headers={"HX-Request": "true"}).status_code == 403


def test_a_removed_admin_role_shuts_the_admin_on_the_next_request(client: Client, admin_user: User) -> None:
    client.force_login(admin_user)
    assert client.get("/admin/releases/repository/").status_code == 200
    admin_user.groups.clear()
    response = client.get("/admin/releases/repository/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_deactivated_user_is_signed_out_on_the_next_request(
    client: Client, developer: User, objects: dict[str, Any]
) -> None:
    client.force_login(developer)
    board = url_for("web:board", "repo", objects)
    assert client.get(board).status_code == 200
    User.objects.filter(pk=developer.pk).update(is_active=False)
    response = client.get(board)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_post_only_actions_refuse_get(client: Client, release_manager: Any, objects: dict[str, Any]) -> None:
    client.force_login(release_manager)
    for name, needs in [
        ("web:staging_test", "repo"),
        ("web:repository_refresh", "repo"),
        ("web:job_cancel", "job"),
        ("web:promotion_promote", "promotion"),
        ("web:promotion_retest", "promotion"),
    ]:
        assert client.get(url_for(name, needs, objects)).status_code == 405, name
