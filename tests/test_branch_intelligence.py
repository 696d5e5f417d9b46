"""Staleness, "Update from staging", hotfix propagation and dependencies between branches,
on real git remotes with jobs run in-process."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases import intelligence, services
from releaseboard.releases.models import Branch, Promotion, PromotionState
from releaseboard.roles import Role
from tests.conftest import run_jobs
from tests.gitrepo import git

pytestmark = pytest.mark.django_db(transaction=True)


def _ready(repository, actor):
    services.refresh(repository, actor=actor)
    run_jobs()
    repository.refresh_from_db()


def _branch(repository, remote, actor, name, files=None, kind="feature"):
    branch = services.request_branch(repository, actor=actor, kind=kind, name=name, purpose="work")
    run_jobs()
    if files:
        remote.commit_on(branch.name, files, f"Work on {name}")
    return Branch.objects.get(pk=branch.pk)


def _promote(branch, developer, release_manager):
    promotion = services.request_promotion(branch, actor=developer, title=branch.short_name)
    run_jobs()
    promotion.refresh_from_db()
    services.promote(promotion, actor=release_manager)
    run_jobs()
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED, promotion.state_message
    return promotion


def _synced(repository, actor, branch):
    _ready(repository, actor)
    return Branch.objects.get(pk=branch.pk)


def test_sync_records_how_far_a_branch_is_behind_and_ahead_of_staging(repository, remote, developer):
    _ready(repository, developer)
    branch = _branch(repository, remote, developer, "login", {"login.py": "A = 1\n"})
    remote.commit_on("staging", {"s1.py": "S = 1\n"}, "Staging one")
    remote.commit_on("staging", {"s2.py": "S = 2\n"}, "Staging two")

    branch = _synced(repository, developer, branch)

    assert (branch.behind, branch.ahead) == (2, 1)


def test_update_from_staging_merges_staging_into_the_branch_with_a_trailer(repository, remote, developer):
    _ready(repository, developer)
    branch = _branch(repository, remote, developer, "login", {"login.py": "A = 1\n"})
    old_head = remote.head(branch.name)
    staging = remote.commit_on("staging", {"s1.py": "S = 1\n"}, "Staging one")
    branch = _synced(repository, developer, branch)

    job = services.update_branch(branch, actor=developer)
    [done] = run_jobs(pk=job.pk)

    assert done.state == JobState.SUCCEEDED, done.message
    head = remote.head(branch.name)
    assert remote.parents(head) == [old_head, staging]
    assert f"Releaseboard-Update: {branch.pk}" in remote.message(head)
    assert "Update feature/login from staging" in remote.message(head)
    branch.refresh_from_db()
    assert (branch.head_sha, branch.behind, branch.ahead) == (head, 0, 2)
    assert AuditEvent.objects.filter(action="branch.updated", object_id=branch.pk, to_sha=head).count() == 1


def test_update_of_a_branch_that_has_staging_already_changes_nothing(repository, remote, developer):
    _ready(repository, developer)
    branch = _branch(repository, remote, developer, "login", {"login.py": "A = 1\n"})
    head = remote.head(branch.name)

    job = services.update_branch(branch, actor=developer)
    [done] = run_jobs(pk=job.pk)

    assert done.state == JobState.SUCCEEDED and "nothing to merge" in done.message
    assert remote.head(branch.name) == head


def test_update_with_conflicts_reports_the_files_and_leaves_the_branch_alone(repository, remote, developer):
    _ready(repository, developer)
    branch = _branch(repository, remote, developer, "calc", {"calc.py": "def add(a, b):\n    return b + a\n"})
    remote.commit_on("staging", {"calc.py": "def add(a, b):\n    return sum((a, b))\n"}, "Staging calc")
    head = remote.head(branch.name)

    job = services.update_branch(branch, actor=developer)
    [done] = run_jobs(pk=job.pk)

    assert done.state == JobState.FAILED and done.reason == JobReason.MERGE_CONFLICT
    assert "calc.py" in done.message and "was not changed" in done.message
    assert remote.head(branch.name) == head
    assert AuditEvent.objects.get(action="branch.update_conflict").details["conflicts"] == ["calc.py"]


def test_only_the_owner_or_a_release_manager_may_update_a_branch(repository, remote, developer, release_manager, ops):
    _ready(repository, developer)
    branch = _branch(repository, remote, developer, "login")
    colleague = User.objects.create_user("dev2")
    colleague.groups.add(Group.objects.get_or_create(name=Role.DEVELOPER.value)[0])

    for refused in (colleague, ops):
        with pytest.raises(PermissionDenied):
            services.update_branch(branch, actor=refused)
    assert services.update_branch(branch, actor=release_manager).kind == "update_branch"
    assert services.update_branch(branch, actor=developer).kind == "update_branch"


def test_update_requested_twice_with_one_key_makes_one_job(repository, remote, developer):
    _ready(repository, developer)
    branch = _branch(repository, remote, developer, "login")

    first = services.update_branch(branch, actor=developer, idempotency_key="u-1")
    second = services.update_branch(branch, actor=developer, idempotency_key="u-1")

    assert first.pk == second.pk
    assert Job.objects.filter(kind="update_branch").count() == 1


def test_a_landed_hotfix_is_flagged_on_branches_without_it_until_they_update(
    repository, remote, developer, release_manager
):
    _ready(repository, developer)
    feature = _branch(repository, remote, developer, "login", {"login.py": "A = 1\n"})
    hotfix = _branch(repository, remote, developer, "typo", {"README": "demo, fixed\n"}, kind="hotfix")
    promotion = _promote(Branch.objects.get(pk=hotfix.pk), developer, release_manager)

    feature = _synced(repository, developer, feature)
    assert feature.missing_hotfixes == [{"name": "hotfix/typo", "promotion": promotion.pk}]
    later = _branch(repository, remote, developer, "later")
    assert Branch.objects.get(pk=later.pk).missing_hotfixes == []

    job = services.update_branch(feature, actor=developer)
    assert run_jobs(pk=job.pk)[0].state == JobState.SUCCEEDED
    assert _synced(repository, developer, feature).missing_hotfixes == []


def test_a_branch_started_from_another_depends_on_it_until_that_one_is_promoted(
    repository, remote, developer, release_manager
):
    _ready(repository, developer)
    base = _branch(repository, remote, developer, "api", {"api.py": "API = 1\n"})
    # A developer starts feature/ui from feature/api (plain git), and works on it.
    git("fetch", "-q", "origin", cwd=remote.work)
    git("push", "-q", "origin", "origin/feature/api:refs/heads/feature/ui", cwd=remote.work)
    remote.commit_on("feature/ui", {"ui.py": "UI = 1\n"}, "UI on top of the API")
    _ready(repository, developer)
    ui = Branch.objects.get(repository=repository, name="feature/ui")

    assert ui.depends_on == [{"name": "feature/api", "commits": 1, "branch": base.pk}]
    assert Branch.objects.get(pk=base.pk).depends_on == []

    promotion = Promotion.objects.create(repository=repository, branch=ui, title="UI")
    client_page = _promotion_page(release_manager, repository, promotion)
    assert "depends on" in client_page and "feature/api" in client_page

    _promote(Branch.objects.get(pk=base.pk), developer, release_manager)
    assert _synced(repository, developer, ui).depends_on == []


def _promotion_page(user, repository, promotion):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.get(reverse("web:promotion_detail", args=[repository.name, promotion.pk])).content.decode()


def test_dependency_rule_points_from_the_branch_that_carries_the_other():
    heads = {"feature/a": "a2", "feature/b": "b1", "feature/c": "c1", "feature/d": "d1", "feature/e": "e1"}
    unmerged = {  # oldest first
        "feature/d": {"a1", "a2", "d1"},  # d is older, and later merged all of a
        "feature/a": {"a1", "a2"},
        "feature/b": {"a1", "b1"},  # b started from a1, then a moved on to a2
        "feature/c": {"c1"},  # unrelated
        "feature/e": {"a1", "b1", "e1"},  # e started from b
    }

    deps = intelligence.dependencies(unmerged, heads)

    assert deps["feature/a"] == [] and deps["feature/c"] == []
    assert deps["feature/b"] == [{"name": "feature/a", "commits": 1}]
    assert deps["feature/d"] == [{"name": "feature/a", "commits": 2}]
    assert deps["feature/e"] == [{"name": "feature/a", "commits": 1}, {"name": "feature/b", "commits": 1}]


def test_board_and_branch_page_show_staleness_missing_hotfix_and_dependency(client, repository, developer):
    owner_branch = Branch.objects.create(
        repository=repository,
        name="feature/ui",
        kind="feature",
        head_sha="c" * 40,
        requested_by=developer,
        behind=3,
        ahead=2,
        missing_hotfixes=[{"name": "hotfix/typo", "promotion": 1}],
        depends_on=[{"name": "feature/api", "branch": 99, "commits": 1}],
    )
    client.force_login(developer)

    for url in (
        reverse("web:board", args=[repository.name]),
        reverse("web:branch_detail", args=[repository.name, owner_branch.pk]),
    ):
        page = client.get(url).content.decode()
        assert "3 behind" in page and "2 ahead" in page
        assert "missing hotfix/typo" in page
        assert "depends on" in page and "feature/api" in page
        assert reverse("web:branch_update", args=[repository.name, owner_branch.pk]) in page

    response = client.post(reverse("web:branch_update", args=[repository.name, owner_branch.pk]))
    job = Job.objects.get(kind="update_branch")
    assert response.status_code == 302 and response["Location"] == reverse("web:job_detail", args=[job.pk])


def test_update_button_is_hidden_from_a_developer_who_does_not_own_the_branch(client, repository, developer):
    other = Branch.objects.create(
        repository=repository, name="feature/x", kind="feature", head_sha="c" * 40, behind=1, ahead=1
    )
    client.force_login(developer)

    page = client.get(reverse("web:branch_detail", args=[repository.name, other.pk])).content.decode()

    assert reverse("web:branch_update", args=[repository.name, other.pk]) not in page
    assert client.post(reverse("web:branch_update", args=[repository.name, other.pk])).status_code == 403
