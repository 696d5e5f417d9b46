"""External CI statuses: who may report a required context, which report counts, and
what a gate says while it waits, after a failure and after its timeout."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from releaseboard.audit.models import AuditEvent
from releaseboard.integrations import statuses
from releaseboard.integrations.models import CommitStatus, GateTarget, RequiredContext

pytestmark = pytest.mark.django_db

SHA = "c0ffee" + "0" * 34


class _Token:
    def __init__(self, name: str) -> None:
        self.name = name


@pytest.fixture
def ci_bot(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("ci-bot")


@pytest.fixture
def security_scan(repository: Any, ci_bot: Any) -> RequiredContext:
    rule = RequiredContext.objects.create(
        repository=repository,
        context="security/scan",
        applies_to=GateTarget.MERGE_COMMIT,
        reporter_tokens=["ci-bot/scanner"],
        timeout_minutes=30,
    )
    return rule


def test_a_required_context_is_refused_from_anyone_but_its_reporters(
    repository: Any, security_scan: RequiredContext, ci_bot: Any, developer: Any
) -> None:
    with pytest.raises(statuses.Refused, match="dev may not report 'security/scan'"):
        statuses.report(repository, sha=SHA, context="security/scan", state="success", actor=developer)
    with pytest.raises(statuses.Refused, match="ci-bot/other may not report"):
        statuses.report(
            repository, sha=SHA, context="security/scan", state="success", actor=ci_bot, token=_Token("other")
        )
    statuses.report(
        repository, sha=SHA, context="security/scan", state="success", actor=ci_bot, token=_Token("scanner")
    )
    security_scan.reporters.add(developer)
    statuses.report(repository, sha=SHA, context="security/scan", state="failure", actor=developer)
    assert [s.state for s in CommitStatus.objects.order_by("id")] == ["success", "failure"]
    assert AuditEvent.objects.filter(action="status.reported").count() == 2


def test_a_context_nobody_requires_may_be_reported_by_anyone(repository: Any, developer: Any) -> None:
    status = statuses.report(
        repository, sha=SHA.upper(), context="lint", state="pending", actor=developer, target_url="https://ci/1"
    )
    assert status.sha == SHA


@pytest.mark.parametrize(
    ("field", "value"),
    [("sha", "abc123"), ("context", "-x"), ("state", "green"), ("target_url", "javascript:alert(1)")],
)
def test_bad_reports_are_refused_with_the_field_named(repository: Any, developer: Any, field: str, value: str) -> None:
    report = {"sha": SHA, "context": "ci/build", "state": "success", "target_url": ""} | {field: value}
    with pytest.raises(statuses.Refused) as refused:
        statuses.report(repository, actor=developer, **report)
    assert refused.value.field == field


def test_the_latest_report_counts_and_the_history_is_kept(
    repository: Any, security_scan: RequiredContext, ci_bot: Any
) -> None:
    token = _Token("scanner")
    statuses.report(repository, sha=SHA, context="security/scan", state="pending", actor=ci_bot, token=token)
    gate = statuses.evaluate(repository, GateTarget.MERGE_COMMIT, SHA)
    assert gate.waiting and "security/scan is pending" in gate.explain()
    statuses.report(
        repository,
        sha=SHA,
        context="security/scan",
        state="failure",
        actor=ci_bot,
        token=token,
        description="2 critical findings",
        target_url="https://scanner.example.com/run/7",
    )
    gate = statuses.evaluate(repository, GateTarget.MERGE_COMMIT, SHA)
    assert gate.failed
    assert "security/scan is failure: 2 critical findings — open https://scanner.example.com/run/7" in gate.explain()
    statuses.report(repository, sha=SHA, context="security/scan", state="success", actor=ci_bot, token=token)
    assert statuses.evaluate(repository, GateTarget.MERGE_COMMIT, SHA).passed
    assert CommitStatus.objects.filter(sha=SHA).count() == 3


def test_a_missing_status_fails_the_gate_after_its_timeout(repository: Any, security_scan: RequiredContext) -> None:
    recently = timezone.now() - dt.timedelta(minutes=5)
    gate = statuses.evaluate(repository, GateTarget.MERGE_COMMIT, SHA, since=recently)
    assert gate.waiting and "security/scan has not reported yet" in gate.explain()
    long_ago = timezone.now() - dt.timedelta(minutes=31)
    gate = statuses.evaluate(repository, GateTarget.MERGE_COMMIT, SHA, since=long_ago)
    assert gate.failed and "security/scan did not report success in time" in gate.explain()


def test_gates_apply_only_to_their_target(repository: Any, security_scan: RequiredContext) -> None:
    assert statuses.evaluate(repository, GateTarget.STAGING_HEAD, SHA).passed
    assert statuses.has_gates(repository, GateTarget.MERGE_COMMIT)
    assert not statuses.has_gates(repository, GateTarget.BRANCH_HEAD)
