"""External CI statuses: CI reports one with a `statuses` token, anyone who may see the
repository reads a commit's history and the gates that apply to it.

Both go through releaseboard/integrations/statuses.py, as the gates do: the reporter
check there judges the token's name ("user/token name"), so a developer's token cannot
post "success" for a context an admin gave to CI.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from releaseboard.integrations import statuses
from releaseboard.integrations.models import CommitStatus, GateTarget, RequiredContext
from releaseboard.roles import Perm
from releaseboard.tokens.models import Scope

from .access import repository_for
from .problems import Problem

router = Router(tags=["statuses"])

# A commit's history is short in practice (a few contexts, a few runs each); the cap
# keeps a runaway CI loop from making one answer huge.
HISTORY_LIMIT = 500


class StatusIn(Schema):
    context: str = Field(description='The status name, e.g. "ci/build"')
    state: Literal["pending", "success", "failure", "error"]
    target_url: str = Field("", description="Where the CI run is (http or https)")
    description: str = Field("", max_length=255)


class StatusOut(Schema):
    id: int
    sha: str
    context: str
    state: str
    target_url: str
    description: str
    reporter: str = Field(description='"user/token name", or the user for a browser session')
    created_at: dt.datetime
    counts: bool = Field(description="The latest status of its context: the one gates read")


class CheckOut(Schema):
    context: str
    state: str = Field(description="success, pending, failure, error, missing or timed_out")
    description: str
    target_url: str
    reporters: list[str] = Field(description="Who may report it: users and tokens")


class GateOut(Schema):
    target: str = Field(description="branch_head, merge_commit or staging_head")
    label: str
    passed: bool
    summary: str
    checks: list[CheckOut]


class StatusListOut(Schema):
    sha: str
    statuses: list[StatusOut] = Field(description="Newest first")
    gates: list[GateOut] = Field(description="The required contexts of each gate, with their state on this commit")


def _status(status: CommitStatus, counts: bool) -> dict[str, Any]:
    user = status.reported_by.get_username() if status.reported_by else "(deleted user)"
    return {
        "id": status.pk,
        "sha": status.sha,
        "context": status.context,
        "state": status.state,
        "target_url": status.target_url,
        "description": status.description,
        "reporter": f"{user}/{status.token_name}" if status.token_name else user,
        "created_at": status.created_at,
        "counts": counts,
    }


def _reporters(rule: RequiredContext) -> list[str]:
    return sorted([u.get_username() for u in rule.reporters.all()] + list(rule.reporter_tokens))


def _sha(sha: str) -> str:
    sha = sha.lower()
    if not statuses.SHA.match(sha):
        message = "A status is about a full 40-character commit SHA."
        raise Problem(422, "validation_failed", message, errors=[{"field": "sha", "message": message}])
    return sha


@router.post(
    "/repos/{repo}/statuses/{sha}",
    response={201: StatusOut},
    summary="Report a CI status for a commit (needs the statuses scope)",
)
def status_report(request: HttpRequest, repo: str, sha: str, body: StatusIn) -> Status[dict[str, Any]]:
    user, repository = repository_for(request, repo, Perm.VIEW, Scope.STATUSES)
    token = request.auth.token  # type: ignore[attr-defined]
    try:
        status = statuses.report(
            repository,
            sha=sha,
            context=body.context,
            state=body.state,
            actor=user,
            token=token,
            target_url=body.target_url,
            description=body.description,
        )
    except statuses.Refused as exc:
        if exc.field:
            raise Problem(
                422, "validation_failed", exc.message, errors=[{"field": exc.field, "message": exc.message}]
            ) from None
        allowed = sorted(
            {name for rule in RequiredContext.objects.filter(repository=repository, context=body.context)
             for name in _reporters(rule)}
        )  # fmt: skip
        who = ", ".join(allowed) if allowed else "nobody yet"
        raise Problem(
            403,
            "status_reporter_refused",
            f"{exc.message} It may be reported by: {who}.",
            reporters=allowed,
        ) from None
    return Status(201, _status(status, counts=True))


@router.get(
    "/repos/{repo}/statuses/{sha}",
    response=StatusListOut,
    summary="A commit's statuses (newest first) and the gates that read them",
)
def status_list(request: HttpRequest, repo: str, sha: str) -> dict[str, Any]:
    _, repository = repository_for(request, repo, Perm.VIEW, Scope.READ)
    sha = _sha(sha)
    latest = {s.pk for s in statuses.latest(repository, sha).values()}
    history = CommitStatus.objects.filter(repository=repository, sha=sha).select_related("reported_by")
    rules: dict[tuple[str, str], RequiredContext] = {
        (r.applies_to, r.context): r
        for r in RequiredContext.objects.filter(repository=repository).prefetch_related("reporters")
    }
    gates = []
    for target in GateTarget:
        if not any(applies_to == target.value for applies_to, _ in rules):
            continue
        gate = statuses.evaluate(repository, target.value, sha)
        checks = [
            {
                "context": c.context,
                "state": c.state,
                "description": c.description,
                "target_url": c.target_url,
                "reporters": _reporters(rules[(target.value, c.context)]),
            }
            for c in gate.checks
        ]
        gates.append(
            {"target": target.value, "label": target.label, "passed": gate.passed, "summary": gate.explain(),
             "checks": checks}
        )  # fmt: skip
    return {
        "sha": sha,
        "statuses": [_status(s, s.pk in latest) for s in history.order_by("-id")[:HISTORY_LIMIT]],
        "gates": gates,
    }
