"""Use cases on real git remotes, with jobs run in-process (tests.conftest.run_jobs)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from releaseboard.audit.models import AuditEvent
from releaseboard.jobs.models import Job, JobReason, JobState
from releaseboard.releases import selectors, services
from releaseboard.releases.models import (
    Branch,
    BranchState,
    MergeCheck,
    Promotion,
    PromotionState,
    Release,
    ReleaseState,
    TestRun,
)
from tests.conftest import run_jobs
from tests.gitrepo import CALC

pytestmark = pytest.mark.django_db(transaction=True)


def _ready(repository, actor):
    services.refresh(repository, actor=actor)
    run_jobs()
    repository.refresh_from_db()


def _feature(repository, remote, developer, name, files=None):
    branch = services.request_branch(repository, actor=developer, kind="feature", name=name, purpose="work")
    run_jobs()
    if files:
        remote.commit_on(branch.name, files, f"Work on {name}")
    return Branch.objects.get(pk=branch.pk)


def _promoted(repository, remote, developer, release_manager, name, files):
    branch = _feature(repository, remote, developer, name, files)
    promotion = services.request_promotion(branch, actor=developer, title=name)
    run_jobs()
    promotion.refresh_from_db()
    services.promote(promotion, actor=release_manager)
    run_jobs()
    promotion.refresh_from_db()
    return promotion


def test_first_sync_imports_heads_and_tests_the_staging_head(repository, remote, developer):
    _ready(repository, developer)

    assert selectors.head(repository, "master") == remote.head("master")
    assert selectors.head(repository, "staging") == remote.head("staging")
    assert TestRun.objects.get(commit_sha=remote.head("staging")).result == "passed"


def test_a_repository_without_staging_offers_to_copy_master(repository, remote, developer, release_manager):
    remote_without_staging = remote
    from tests.gitrepo import git

    git("--git-dir", str(remote_without_staging.bare), "update-ref", "-d", "refs/heads/staging")
    _ready(repository, developer)
    assert selectors.release_preview(repository).refusal.startswith("staging does not exist")

    services.copy_master_to_staging(repository, actor=release_manager)
    jobs = run_jobs()

    assert jobs[0].state == JobState.SUCCEEDED, jobs[0].message
    assert remote.head("staging") == remote.head("master")


@pytest.mark.parametrize("name", ["Bad Name", "-x", "a..b", "master", "x" * 300, "$(id)", "feature/../x"])
def test_request_branch_refuses_bad_names_with_a_reason(repository, developer, name):
    with pytest.raises(services.Refused) as refused:
        services.request_branch(repository, actor=developer, kind="feature", name=name, purpose="p")
    assert refused.value.field == "name"
    assert not Branch.objects.exists() and not Job.objects.exists()


def test_request_branch_refuses_a_taken_name(repository, remote, developer):
    _ready(repository, developer)
    _feature(repository, remote, developer, "login")
    with pytest.raises(services.Refused, match="already exists"):
        services.request_branch(repository, actor=developer, kind="feature", name="login", purpose="again")


def test_branch_requested_twice_with_one_key_makes_one_branch_and_one_job(repository, developer):
    first = services.request_branch(
        repository, actor=developer, kind="feature", name="a", purpose="p", idempotency_key="k-1"
    )
    second = services.request_branch(
        repository, actor=developer, kind="feature", name="a", purpose="p", idempotency_key="k-1"
    )
    assert first.pk == second.pk
    assert Job.objects.filter(kind="create_branch").count() == 1


def test_branch_name_that_exists_on_the_remote_is_not_overwritten(repository, remote, developer):
    _ready(repository, developer)
    other = remote.commit_on("staging", {"x.py": "X = 1\n"}, "Someone else's", push=False)
    from tests.gitrepo import git

    git("push", "-q", "origin", f"{other}:refs/heads/feature/taken", cwd=remote.work)
    branch = services.request_branch(repository, actor=developer, kind="feature", name="taken", purpose="p")
    job = run_jobs()[-1]

    assert job.state == JobState.FAILED and job.reason == JobReason.BRANCH_EXISTS
    assert remote.head("feature/taken") == other
    assert Branch.objects.get(pk=branch.pk).state in (BranchState.FAILED, BranchState.ACTIVE)


def test_nothing_to_promote_is_a_clear_result(repository, remote, developer):
    _ready(repository, developer)
    branch = _feature(repository, remote, developer, "empty")
    promotion = services.request_promotion(branch, actor=developer, title="Empty")
    job = run_jobs()[-1]

    assert job.state == JobState.FAILED and job.reason == JobReason.NOTHING_TO_PROMOTE
    assert "Nothing to promote" in job.message
    assert Promotion.objects.get(pk=promotion.pk).merge_check == MergeCheck.NOTHING


def test_merge_conflict_lists_the_conflicted_files(repository, remote, developer, release_manager):
    _ready(repository, developer)
    _promoted(repository, remote, developer, release_manager, "one", {"calc.py": CALC + "# one\n"})
    branch = _feature(repository, remote, developer, "two")
    from tests.gitrepo import git

    # feature/two was cut before feature/one landed? No: cut it from the old base.
    git("push", "-q", "-f", "origin", f"{remote.head('master')}:refs/heads/feature/two", cwd=remote.work)
    remote.commit_on("feature/two", {"calc.py": CALC + "# two\n"}, "Two")
    promotion = services.request_promotion(branch, actor=developer, title="Two")
    job = run_jobs()[-1]

    assert job.reason == JobReason.MERGE_CONFLICT
    assert "calc.py (content)" in job.message
    promotion.refresh_from_db()
    assert promotion.merge_check == MergeCheck.CONFLICT and promotion.conflict_files == ["calc.py (content)"]


def test_promotion_when_staging_moved_is_merged_and_tested_again(repository, remote, developer, release_manager):
    _ready(repository, developer)
    branch = _feature(repository, remote, developer, "late", {"late.py": "L = 1\n"})
    promotion = services.request_promotion(branch, actor=developer, title="Late")
    run_jobs()
    promotion.refresh_from_db()
    tested_branch_sha = promotion.branch_sha
    other = _promoted(repository, remote, developer, release_manager, "early", {"early.py": "E = 1\n"})
    # The developer pushes more after the test; the promotion must still land what was tested.
    remote.commit_on("feature/late", {"late.py": "L = 2\n"}, "Untested change")

    services.promote(promotion, actor=release_manager)
    jobs = run_jobs()

    assert [j.kind for j in jobs] == ["promote", "test_promotion", "promote"]
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED
    assert remote.head("staging") == promotion.merge_sha
    assert remote.parents("staging") == [other.merge_sha, tested_branch_sha]
    assert selectors.has_passing_test(repository, promotion.merge_sha)


def test_release_is_refused_when_master_is_not_an_ancestor_of_staging(repository, remote, developer, release_manager):
    _ready(repository, developer)
    _promoted(repository, remote, developer, release_manager, "one", {"one.py": "O = 1\n"})
    remote.commit_on("master", {"direct.py": "D = 1\n"}, "Pushed straight to master")
    services.refresh(repository, actor=developer)
    run_jobs()
    repository.refresh_from_db()

    preview = selectors.release_preview(repository)

    assert "not an ancestor" in preview.refusal
    with pytest.raises(services.Refused, match="not an ancestor"):
        services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")


def test_release_requires_a_passing_test_of_the_staging_head(repository, remote, developer, release_manager):
    _ready(repository, developer)
    remote.commit_on("staging", {"calc.py": CALC.replace("a + b", "a * b")}, "Broken, pushed directly")
    services.refresh(repository, actor=developer)
    run_jobs()
    repository.refresh_from_db()

    with pytest.raises(services.Refused, match="no passing test"):
        services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")
    assert not Release.objects.exists()


def test_proposed_version_is_minor_for_features_and_patch_for_hotfixes(repository, remote, developer, release_manager):
    _ready(repository, developer)
    branch = services.request_branch(repository, actor=developer, kind="hotfix", name="fix", purpose="p")
    run_jobs()
    remote.commit_on("hotfix/fix", {"fix.py": "F = 1\n"}, "Fix")
    promotion = services.request_promotion(Branch.objects.get(pk=branch.pk), actor=developer, title="Fix")
    run_jobs()
    services.promote(Promotion.objects.get(pk=promotion.pk), actor=release_manager)
    run_jobs()
    repository.refresh_from_db()
    assert str(selectors.release_preview(repository).proposed_version) == "0.0.1"

    _promoted(repository, remote, developer, release_manager, "feat", {"feat.py": "F = 2\n"})
    repository.refresh_from_db()
    assert str(selectors.release_preview(repository).proposed_version) == "0.1.0"


def test_copy_master_to_staging_discards_unreleased_promotions(repository, remote, developer, release_manager):
    _ready(repository, developer)
    promotion = _promoted(repository, remote, developer, release_manager, "gone", {"gone.py": "G = 1\n"})
    assert list(selectors.unreleased_promotions(repository)) == [promotion]

    services.copy_master_to_staging(repository, actor=release_manager)
    run_jobs()

    assert remote.head("staging") == remote.head("master")
    assert Promotion.objects.get(pk=promotion.pk).state == PromotionState.DISCARDED
    event = AuditEvent.objects.get(action="staging.copied")
    assert event.details["discarded_promotions"] == [promotion.pk]


def test_developer_cannot_promote_or_release(repository, remote, developer):
    _ready(repository, developer)
    branch = _feature(repository, remote, developer, "mine", {"m.py": "M = 1\n"})
    promotion = services.request_promotion(branch, actor=developer, title="Mine")
    run_jobs()
    with pytest.raises(PermissionDenied):
        services.promote(Promotion.objects.get(pk=promotion.pk), actor=developer)
    with pytest.raises(PermissionDenied):
        services.promote_to_master(repository, actor=developer, version="1.0.0", notes="")
    with pytest.raises(PermissionDenied):
        services.copy_master_to_staging(repository, actor=developer)


def test_each_request_writes_exactly_one_audit_event_with_its_change(repository, developer):
    before = AuditEvent.objects.count()
    branch = services.request_branch(repository, actor=developer, kind="feature", name="audited", purpose="p")

    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [e.action for e in events] == ["branch.requested"]
    assert events[0].actor == developer and events[0].object_id == branch.pk


def test_a_refused_request_leaves_no_audit_event_and_no_row(repository, developer):
    with pytest.raises(services.Refused):
        services.request_branch(repository, actor=developer, kind="feature", name="Bad Name", purpose="p")
    assert not AuditEvent.objects.exists() and not Branch.objects.exists()


def test_audit_record_outside_a_transaction_is_refused(repository):
    from releaseboard.audit.service import NotInTransaction, record

    with pytest.raises(NotInTransaction):
        record("x", actor=None, repository=repository)


def test_release_tag_already_on_the_remote_is_never_moved(repository, remote, developer, release_manager):
    _ready(repository, developer)
    _promoted(repository, remote, developer, release_manager, "one", {"one.py": "O = 1\n"})
    from tests.gitrepo import git

    git("push", "-q", "origin", f"{remote.head('master')}:refs/tags/v0.1.0", cwd=remote.work)
    old_tag = remote.tag_target("v0.1.0")
    master_before = remote.head("master")
    repository.refresh_from_db()
    services.refresh(repository, actor=developer)
    run_jobs()
    repository.refresh_from_db()
    # The sync learned of v0.1.0, so the proposal moves on and 0.1.0 is refused.
    with pytest.raises(services.Refused):
        services.promote_to_master(repository, actor=release_manager, version="0.1.0", notes="")
    release = services.promote_to_master(repository, actor=release_manager, version="0.2.0", notes="")
    run_jobs()

    release.refresh_from_db()
    assert release.state == ReleaseState.RELEASED
    assert remote.tag_target("v0.1.0") == old_tag != master_before or remote.tag_target("v0.1.0") == old_tag
    assert remote.tag_target("v0.2.0") == remote.head("master")


def test_a_repeated_promote_click_after_the_promotion_landed_returns_the_first_job(
    repository, remote, developer, release_manager
):
    _ready(repository, developer)
    branch = _feature(repository, remote, developer, "twice", {"t.py": "T = 1\n"})
    promotion = services.request_promotion(branch, actor=developer, title="Twice")
    run_jobs()
    first = services.promote(Promotion.objects.get(pk=promotion.pk), actor=release_manager, idempotency_key="click-1")
    run_jobs()
    assert Promotion.objects.get(pk=promotion.pk).state == PromotionState.PROMOTED

    again = services.promote(Promotion.objects.get(pk=promotion.pk), actor=release_manager, idempotency_key="click-1")

    assert again.pk == first.pk
    assert Job.objects.filter(kind="promote").count() == 1
