"""Detecting changes to master and staging that Releaseboard did not make (DESIGN
invariant 6). Called by every job's record_heads, before it records the new heads:
examine() compares (git, no writes), record() writes alarms inside the job's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from releaseboard import vcs
from releaseboard.audit.models import AuditEvent
from releaseboard.audit.service import record as audit_record
from releaseboard.jobs.models import Job, JobState
from releaseboard.policy.guard import reset_since
from releaseboard.policy.models import DriftAlarm, DriftState
from releaseboard.releases.models import Branch, BranchState, Promotion, Release, Repository

COMMIT_LIMIT = 50


@dataclass
class Drift:
    branch_name: str
    expected_sha: str
    found_sha: str
    commits: list[dict[str, Any]] = field(default_factory=list)


def explained(repository: Repository, name: str, new: str, heads: dict[str, str]) -> bool:
    """Whether Releaseboard's own records account for `name` now pointing at `new`.

    staging: a promotion's merge commit (made by Releaseboard with its own identity), or
    master's head written by "Copy master to staging". master: a release's commit. The
    rows are written before the push, so a sync that races the pushing job still agrees.
    """
    if name == repository.master_branch:
        return Release.objects.filter(repository=repository, sha=new).exists()
    if Promotion.objects.filter(repository=repository, merge_sha=new).exists():
        return True
    return new == heads.get(repository.master_branch) and (
        AuditEvent.objects.filter(repository_id=repository.pk, action="staging.copied", to_sha=new).exists()
        or Job.objects.filter(scope_id=repository.pk, kind="copy_master", state__in=JobState.active()).exists()
    )


def examine(repository: Repository, mirror: vcs.Mirror, heads: dict[str, str]) -> list[Drift]:
    """master/staging heads on the remote that moved from the recorded ones unexplained."""
    names = (repository.master_branch, repository.staging_branch)
    recorded = dict(
        Branch.objects.filter(repository=repository, name__in=names, state=BranchState.ACTIVE).values_list(
            "name", "head_sha"
        )
    )
    drifts = []
    for name in names:
        old, new = recorded.get(name, ""), heads.get(name, "")
        # No recorded head yet (first import, or a branch Releaseboard creates) is no drift.
        if not old or not new or old == new or explained(repository, name, new, heads):
            continue
        base = old if mirror.has_commit(old) else None
        commits = [
            {"sha": c.sha, "subject": c.subject[:200], "author": c.author_name, "email": c.author_email}
            for c in mirror.commits_between(base, new, limit=COMMIT_LIMIT)
        ]
        drifts.append(Drift(name, old, new, commits))
    return drifts


def record(repository: Repository, drifts: list[Drift]) -> None:
    """Raise (or extend) an alarm per drift, with one audit event naming the commits and
    their authors; close staging alarms that a copy of master has reset. Runs inside the
    job's lease-checked transaction, before the new heads are recorded."""
    for alarm in DriftAlarm.objects.filter(repository=repository, state=DriftState.OPEN).select_related("repository"):
        if reset_since(alarm):
            DriftAlarm.objects.filter(pk=alarm.pk).update(state=DriftState.RESET, resolved_at=timezone.now())
            audit_record(
                "drift.reset",
                actor=None,
                repository=repository,
                obj=alarm,
                from_sha=alarm.found_sha,
                message=f"{alarm.branch_name} was copied from master; the alarm is closed.",
            )
    for drift in drifts:
        # Another job may have recorded these heads meanwhile: only the first reports them.
        if not Branch.objects.filter(
            repository=repository, name=drift.branch_name, head_sha=drift.expected_sha
        ).exists():
            continue
        alarm = DriftAlarm.objects.filter(
            repository=repository, branch_name=drift.branch_name, state=DriftState.OPEN
        ).first()
        if alarm is None:
            alarm = DriftAlarm(repository=repository, branch_name=drift.branch_name, expected_sha=drift.expected_sha)
        alarm.found_sha = drift.found_sha
        alarm.commits = drift.commits + [c for c in alarm.commits if c["sha"] not in {d["sha"] for d in drift.commits}]
        alarm.detected_at = timezone.now()
        alarm.save()
        authors = sorted({f"{c['author']} <{c['email']}>" for c in drift.commits})
        event = audit_record(
            "drift.detected",
            actor=None,
            repository=repository,
            obj=alarm,
            from_sha=drift.expected_sha,
            to_sha=drift.found_sha,
            result="violation",
            message=(
                f"{drift.branch_name} moved outside Releaseboard: {len(drift.commits)} unexpected "
                f"commit(s) by {', '.join(authors) or 'unknown'}. Promotions into it stop until a release "
                "manager resolves it."
            ),
            details={
                "branch": drift.branch_name,
                "authors": authors,
                "commits": [{k: c[k] for k in ("sha", "subject", "author")} for c in drift.commits[:20]],
            },
        )
        DriftAlarm.objects.filter(pk=alarm.pk).update(detected_seq=event.seq)
