"""External CI statuses as gates.

CI reports a state for a (commit, context) pair; the latest report counts and the
history is kept. A repository's admin names the contexts that must be "success" before
a promotion is promoted (on the branch head, or on the tested merge commit) or before a
release (on the staging head), and who may report each one: a status from anyone else is
refused, so a developer cannot post "success" for the security scan.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from releaseboard.audit.service import record as audit_record
from releaseboard.integrations.models import CommitStatus, GateTarget, RequiredContext, StatusState

SHA = re.compile(r"^[0-9a-f]{40}$")
CONTEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/:@+-]{0,99}$")


class Refused(Exception):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _reporter_name(user: Any, token: Any) -> str:
    return f"{user.get_username()}/{token.name}" if token is not None else user.get_username()


def may_report(required: RequiredContext, user: Any, token: Any) -> bool:
    if token is not None and f"{user.get_username()}/{token.name}" in required.reporter_tokens:
        return True
    return required.reporters.filter(pk=user.pk).exists()


def report(
    repository: Any,
    *,
    sha: str,
    context: str,
    state: str,
    actor: Any,
    token: Any = None,
    target_url: str = "",
    description: str = "",
) -> CommitStatus:
    """Record a status. Refused when the context is required somewhere in this repository
    and the reporter is not one of those named for it."""
    sha = sha.lower()
    if not SHA.match(sha):
        raise Refused("A status is reported for a full 40-character commit SHA.", "sha")
    if not CONTEXT.match(context):
        raise Refused("The context is 1 to 100 letters, digits and . _ / : @ + - (e.g. ci/build).", "context")
    if state not in StatusState.values:
        raise Refused(f"The state is one of {', '.join(StatusState.values)}.", "state")
    if target_url and not re.match(r"^https?://", target_url):
        raise Refused("The target URL starts with http:// or https://.", "target_url")
    for required in RequiredContext.objects.filter(repository=repository, context=context):
        if not may_report(required, actor, token):
            raise Refused(
                f"{_reporter_name(actor, token)} may not report {context!r} for {repository.name}: an admin named "
                "who reports it (Admin → Required contexts).",
            )
    with transaction.atomic():
        status = CommitStatus.objects.create(
            repository=repository,
            sha=sha,
            context=context,
            state=state,
            target_url=target_url,
            description=description[:255],
            reported_by=actor,
            token_name=token.name if token is not None else "",
        )
        audit_record(
            "status.reported",
            actor=actor,
            repository=repository,
            obj=status,
            to_sha=sha,
            result=state,
            message=description[:255],
            details={"context": context, "target_url": target_url},
        )
    return status


def latest(repository: Any, sha: str) -> dict[str, CommitStatus]:
    """The status that counts for each context of one commit."""
    found: dict[str, CommitStatus] = {}
    for status in CommitStatus.objects.filter(repository=repository, sha=sha).order_by("id"):
        found[status.context] = status
    return found


@dataclass(frozen=True)
class ContextCheck:
    context: str
    state: str  # success, pending, failure, error, missing, timed_out
    description: str = ""
    target_url: str = ""

    @property
    def passed(self) -> bool:
        return self.state == StatusState.SUCCESS

    @property
    def failed(self) -> bool:
        return self.state in (StatusState.FAILURE, StatusState.ERROR, "timed_out")


@dataclass
class Gate:
    target: str
    sha: str
    checks: list[ContextCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> bool:
        return any(c.failed for c in self.checks)

    @property
    def waiting(self) -> bool:
        return not self.passed and not self.failed

    def explain(self) -> str:
        """One sentence for the page and the job log: what blocks, and where to look."""
        what = GateTarget(self.target).label.split(",")[0].lower()
        parts = []
        for check in self.checks:
            if check.passed:
                continue
            where = f" — open {check.target_url}" if check.target_url else ""
            if check.state == "missing":
                parts.append(f"{check.context} has not reported yet")
            elif check.state == "timed_out":
                parts.append(f"{check.context} did not report success in time{where}")
            else:
                extra = f": {check.description}" if check.description else ""
                parts.append(f"{check.context} is {check.state}{extra}{where}")
        if not parts:
            return f"All required statuses on {what} {self.sha[:10]} are green."
        return f"Required statuses on {what} {self.sha[:10]}: " + "; ".join(parts) + "."


def evaluate(repository: Any, target: str, sha: str, *, since: dt.datetime | None = None) -> Gate:
    """The required contexts for `target` on `sha`. A context still missing or pending
    more than its timeout after `since` counts as failed."""
    gate = Gate(target, sha)
    required = list(RequiredContext.objects.filter(repository=repository, applies_to=target))
    if not required:
        return gate
    reported = latest(repository, sha)
    now = timezone.now()
    for rule in required:
        status = reported.get(rule.context)
        state = status.state if status is not None else "missing"
        overdue = since is not None and now - since > dt.timedelta(minutes=rule.timeout_minutes)
        if state in ("missing", StatusState.PENDING) and overdue:
            state = "timed_out"
        gate.checks.append(
            ContextCheck(
                rule.context,
                state,
                status.description if status is not None else "",
                status.target_url if status is not None else "",
            )
        )
    return gate


def has_gates(repository: Any, target: str) -> bool:
    return RequiredContext.objects.filter(repository=repository, applies_to=target).exists()


def gated_targets(repository: Any) -> set[str]:
    """The targets (GateTarget values) the repository requires contexts on, in one query."""
    return set(RequiredContext.objects.filter(repository=repository).values_list("applies_to", flat=True).distinct())


# How a page marks each state in a compact badge (the word is always next to it).
SYMBOLS = {"success": "✓", "failure": "✗", "error": "✗", "timed_out": "✗", "pending": "…", "missing": "…"}


def http_url(value: str) -> str:
    """`value` if it is an http(s) URL, else "": whatever was stored (an older row, a
    direct database write), a page never turns it into a javascript: or data: link."""
    value = (value or "").strip()
    return value if value.lower().startswith(("http://", "https://")) else ""


@dataclass(frozen=True)
class ContextLine:
    """One context on one commit, as a page shows it."""

    context: str
    state: str  # success, pending, failure, error, or missing (required, not reported yet)
    description: str
    target_url: str  # http(s) only, else ""
    required: bool

    @property
    def passed(self) -> bool:
        return self.state == StatusState.SUCCESS

    @property
    def failed(self) -> bool:
        return self.state in (StatusState.FAILURE, StatusState.ERROR, "timed_out")

    @property
    def word(self) -> str:
        return {"missing": "not reported", "timed_out": "timed out"}.get(self.state, self.state)

    @property
    def symbol(self) -> str:
        return SYMBOLS.get(self.state, "…")

    @property
    def tone(self) -> str:
        return "good" if self.passed else "bad" if self.failed else "busy"


@dataclass
class CommitChecks:
    """The contexts of one commit for one gate target: the required ones first, then any
    other context CI reported, each by name."""

    target: str
    sha: str
    lines: list[ContextLine] = field(default_factory=list)

    @property
    def gate(self) -> Gate:
        required = [
            ContextCheck(line.context, line.state, line.description, line.target_url)
            for line in self.lines
            if line.required
        ]
        return Gate(self.target, self.sha, required)

    @property
    def blocking(self) -> list[ContextLine]:
        return [line for line in self.lines if line.required and not line.passed]

    @property
    def failed(self) -> bool:
        return any(line.failed for line in self.blocking)

    @property
    def explanation(self) -> str:
        """Gate.explain() when a required context is not green, else ""."""
        return self.gate.explain() if self.blocking else ""

    @property
    def label(self) -> str:
        return GateTarget(self.target).label.split(",")[0]


def for_page(repository: Any, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], CommitChecks]:
    """The contexts of many (gate target, sha) pairs of one repository in two queries,
    whatever their number: the repository's required contexts, and the latest status of
    each (sha, context) among the SHAs asked for. Pairs without a SHA are left out."""
    wanted = [(target, sha) for target, sha in wanted if sha]
    if not wanted:
        return {}
    rules: dict[str, list[str]] = {}
    for target, context in RequiredContext.objects.filter(repository=repository).values_list("applies_to", "context"):
        rules.setdefault(target, []).append(context)
    shas = sorted({sha for _, sha in wanted})
    newest = (
        CommitStatus.objects.filter(repository=repository, sha__in=shas)
        .values("sha", "context")
        .annotate(newest=Max("id"))
        .values("newest")
    )
    reported: dict[str, dict[str, CommitStatus]] = {}
    for row in CommitStatus.objects.filter(id__in=newest).order_by("context"):
        reported.setdefault(row.sha, {})[row.context] = row
    found: dict[tuple[str, str], CommitChecks] = {}
    for target, sha in wanted:
        on_commit = reported.get(sha, {})
        required = rules.get(target, [])
        checks = CommitChecks(target, sha)
        for context in [*required, *(c for c in on_commit if c not in required)]:
            status = on_commit.get(context)
            checks.lines.append(
                ContextLine(
                    context,
                    status.state if status is not None else "missing",
                    status.description if status is not None else "",
                    http_url(status.target_url) if status is not None else "",
                    context in required,
                )
            )
        found[(target, sha)] = checks
    return found
