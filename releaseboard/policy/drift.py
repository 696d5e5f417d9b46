"""Detecting changes to master and staging that Releaseboard did not make (DESIGN
invariant 6). Called by every job's record_heads, before it records the new heads:
examine() compares (git, no writes), record() writes alarms inside the job's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from releaseboard import vcs
from releaseboard.audit.service import record as audit_record
from releaseboard.policy.guard import reset_since
from releaseboard.policy.models import DriftAlarm, DriftState
from releaseboard.releases import moves, selectors
from releaseboard.releases.models import Promotion, Release, ReleaseState, Repository
from releaseboard.vcs.history import commits_not_in

COMMIT_LIMIT = 50
# The commits Releaseboard pushed that an alarm checks the new commits against: the
# merge commits of the latest promotions and the latest releases. Everything reachable
# from one of them came in through a tested promotion.
OWN_COMMIT_LIMIT = 200


@dataclass
class Drift:
    branch_name: str
    expected_sha: str  # "" when Releaseboard had seen the branch deleted
    found_sha: str  # "" when the branch is gone from the remote
    commits: list[dict[str, Any]] = field(default_factory=list)


def explained(repository: Repository, name: str, old: str, new: str) -> bool:
    """Whether Releaseboard made `name` move from `old` to `new`: a job of it wrote this
    very move before pushing it and has not settled it yet (releases.moves). Any other
    move (forward, backward, sideways, a deletion, a re-creation) is drift, even to a
    commit Releaseboard once pushed there."""
    return moves.explains(repository, name, old, new)


def own_commits(repository: Repository) -> list[str]:
    """The latest commits Releaseboard pushed to staging or master."""
    promoted = Promotion.objects.filter(repository=repository).exclude(promoted_sha="").order_by("-id")
    released = Release.objects.filter(repository=repository, state=ReleaseState.RELEASED).order_by("-id")
    return list(promoted.values_list("promoted_sha", flat=True)[:OWN_COMMIT_LIMIT]) + list(
        released.values_list("sha", flat=True)[:OWN_COMMIT_LIMIT]
    )


def new_commits(repository: Repository, mirror: vcs.Mirror, name: str, old: str, new: str) -> list[dict[str, Any]]:
    """The commits `name` gained, each with its author and committer and whether it came
    through Releaseboard (reachable from a commit Releaseboard pushed) or not."""
    if not new:
        return []
    # A re-created branch is compared with the other one, not with all of history.
    other = repository.staging_branch if name == repository.master_branch else repository.master_branch
    base = old or selectors.head(repository, other)
    gained = commits_not_in(mirror, new, [base], limit=COMMIT_LIMIT)
    outside = {c.sha for c in commits_not_in(mirror, new, [base, *own_commits(repository)], limit=COMMIT_LIMIT)}
    return [
        {
            "sha": c.sha,
            "subject": c.subject[:200],
            "author": c.author_name,
            "email": c.author_email,
            "committer": c.committer_name,
            "committer_email": c.committer_email,
            "releaseboard": c.sha not in outside,
        }
        for c in gained
    ]


def examine(repository: Repository, mirror: vcs.Mirror, heads: dict[str, str], recorded: dict[str, str]) -> list[Drift]:
    """master/staging heads on the remote that moved from the `recorded` ones (read before
    the fetch) without Releaseboard making that move."""
    drifts = []
    for name in (repository.master_branch, repository.staging_branch):
        if name not in recorded:
            continue  # never seen (first import, or a staging Releaseboard is creating): no drift
        old, new = recorded[name], heads.get(name, "")
        if old == new or explained(repository, name, old, new):
            continue
        drifts.append(Drift(name, old, new, new_commits(repository, mirror, name, old, new)))
    return drifts


def people(commits: list[dict[str, Any]]) -> list[str]:
    """ "Name <email>" of every author and committer of `commits`, sorted."""
    found = {f"{c['author']} <{c['email']}>" for c in commits}
    found |= {f"{c['committer']} <{c['committer_email']}>" for c in commits if c.get("committer")}
    return sorted(found)


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
        alarm = DriftAlarm.objects.filter(
            repository=repository, branch_name=drift.branch_name, state=DriftState.OPEN
        ).first() or DriftAlarm(repository=repository, branch_name=drift.branch_name, expected_sha=drift.expected_sha)
        alarm.found_sha = drift.found_sha
        alarm.commits = drift.commits + [c for c in alarm.commits if c["sha"] not in {d["sha"] for d in drift.commits}]
        alarm.detected_at = timezone.now()
        alarm.save()
        outside = [c for c in drift.commits if not c.get("releaseboard")]
        through = [c for c in drift.commits if c.get("releaseboard")]
        names = people(outside)
        event = audit_record(
            "drift.detected",
            actor=None,
            repository=repository,
            obj=alarm,
            from_sha=drift.expected_sha,
            to_sha=drift.found_sha,
            result="violation",
            message=f"{describe(drift, outside, through, names)} Promotions into it stop until a release "
            "manager resolves it.",
            details={
                "branch": drift.branch_name,
                "authors": names,
                # The commits Releaseboard did not put there, with who wrote and who committed
                # each; apart from those that came in through its tested promotions.
                "commits": [
                    {k: c.get(k, "") for k in ("sha", "subject", "author", "email", "committer", "committer_email")}
                    for c in outside[:20]
                ],
                "releaseboard_commits": [c["sha"] for c in through[:20]],
            },
        )
        DriftAlarm.objects.filter(pk=alarm.pk).update(detected_seq=event.seq)


def describe(drift: Drift, outside: list[dict[str, Any]], through: list[dict[str, Any]], names: list[str]) -> str:
    """One sentence for people: how the branch moved and whose commits it gained."""
    name = drift.branch_name
    if not drift.found_sha:
        return f"{name} was deleted outside Releaseboard (it was at {drift.expected_sha[:10]})."
    moved = f"{drift.expected_sha[:10]} \u2192 {drift.found_sha[:10]}" if drift.expected_sha else "re-created"
    if not outside:
        text = f"{name} moved outside Releaseboard ({moved}) with no commit Releaseboard did not put there"
    else:
        text = (
            f"{name} moved outside Releaseboard ({moved}): {len(outside)} commit(s) not put there by "
            f"Releaseboard, by {', '.join(names)}"
        )
    if through:
        text += f"; {len(through)} commit(s) came through Releaseboard's tested promotions"
    return text + "."
