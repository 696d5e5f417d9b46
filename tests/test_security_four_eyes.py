"""The four-eyes rule: on a repository that asks for it, whoever requested a promotion
cannot also promote it to staging. Real git remote, jobs run in-process."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from releaseboard.jobs.models import Job
from releaseboard.releases import services
from releaseboard.releases.models import Promotion, PromotionState
from releaseboard.roles import Role
from tests.conftest import _user, run_jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def second_release_manager(db: None) -> User:
    return _user("rm2", Role.RELEASE_MANAGER)


def _tested_promotion(repository, remote, requester) -> Promotion:
    services.refresh(repository, actor=requester)
    run_jobs()
    branch = services.request_branch(repository, actor=requester, kind="feature", name="audit-trail", purpose="x")
    run_jobs()
    remote.commit_on(branch.name, {"trail.py": "T = 1\n"}, "Add the trail")
    branch.refresh_from_db()
    promotion = services.request_promotion(branch, actor=requester, title="Audit trail")
    run_jobs()
    promotion.refresh_from_db()
    assert promotion.merge_sha
    return promotion


def test_the_requester_cannot_promote_their_own_promotion(repository, remote, release_manager, second_release_manager):
    repository.four_eyes = True
    repository.save()
    promotion = _tested_promotion(repository, remote, release_manager)

    with pytest.raises(services.Refused) as refused:
        services.promote(promotion, actor=release_manager)
    assert "Four-eyes rule" in refused.value.message and "another release manager" in refused.value.message
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.OPEN and promotion.promoted_by is None
    assert not Job.objects.filter(kind="promote").exists()

    services.promote(promotion, actor=second_release_manager)
    run_jobs()
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED
    assert promotion.promoted_by == second_release_manager
    assert remote.head("staging") == promotion.merge_sha


def test_the_rule_holds_through_the_web_and_a_retry(repository, remote, release_manager):
    repository.four_eyes = True
    repository.save()
    promotion = _tested_promotion(repository, remote, release_manager)
    client = Client()
    client.force_login(release_manager)

    url = reverse("web:promotion_promote", kwargs={"repo": repository.name, "promotion_id": promotion.pk})
    response = client.post(url, follow=True)
    assert "Four-eyes rule" in response.content.decode()
    assert Promotion.objects.get(pk=promotion.pk).state == PromotionState.OPEN
    # A failed promote job retried by its requester is the same promotion: refused too.
    failed = Job.objects.create(
        kind="promote",
        title="Promote",
        state="failed",
        subject_type="promotion",
        subject_id=promotion.pk,
        scope_id=repository.pk,
        scope_name=repository.name,
    )
    with pytest.raises(services.Refused, match="Four-eyes rule"):
        services.retry_job(failed, actor=release_manager)


def test_without_the_rule_a_release_manager_may_promote_their_own_request(repository, remote, release_manager):
    assert repository.four_eyes is False
    promotion = _tested_promotion(repository, remote, release_manager)
    services.promote(promotion, actor=release_manager)
    run_jobs()
    promotion.refresh_from_db()
    assert promotion.state == PromotionState.PROMOTED
