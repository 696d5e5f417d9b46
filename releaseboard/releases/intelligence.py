"""What every sync learns about the open branches, for the board: how far each is behind
and ahead of staging, which hotfixes on staging it lacks, and which other open branches'
unmerged commits it carries (promoting it would bring those along).

Runs from record_heads after each fetch, and after a job moves staging. All git here is
read-only and local to the mirror; the results are stored on Branch so the web never runs
git. The git is three processes however many branches are open (branch_graph.py): the
parent map of what the open branches have and staging lacks, a common ancestor of where
they meet staging, and the parent map of staging's commits after it (at most
STAGING_WINDOW). Counted with a git process of its own, and named in the job log: a
branch that shares no history with staging, each branch when the window is cut before
it, and a landed hotfix the window cannot place. When staging, the open heads and the
landed hotfixes are those of the last computation, no git runs at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple, Protocol, cast

from django.conf import settings
from django.db import connection
from django.db.models import Field
from django.utils import timezone

from releaseboard import branching, vcs
from releaseboard.background import AHEAD_NICE, Background
from releaseboard.jobs.execution import JobContext
from releaseboard.releases.branch_graph import StagingWindow, head_reach
from releaseboard.releases.models import (
    Branch,
    BranchState,
    Promotion,
    PromotionState,
    Repository,
    lock_branch_values,
)
from releaseboard.vcs.history import common_ancestor, parent_map

# A hotfix counts while it waits on staging for a release, and for this long after it was
# released: a branch forked before it is still tested without the fix until updated.
RECENT_HOTFIX_DAYS = 30
RECENT_HOTFIX_LIMIT = 20
# The unmerged commits listed per branch to find shared ones. A branch further ahead than
# this is compared on its newest commits only (and may then miss a dependency).
DEPENDENCY_SCAN_LIMIT = 5000
# Staging's commits read for the behind counts: those after where the oldest open branch
# forked. Past this many, a branch the window does not reach back to is counted by a git
# process of its own. (The window's bitmasks take up to STAGING_WINDOW² / 2 bits: 1.5 MB.)
STAGING_WINDOW = 5000
# The most commits, over all open branches together, that they may have and staging
# lack for the constant-process path; past it every branch is counted on its own (the old way).
UNMERGED_LIMIT = 50_000
# Bumped when the facts' meaning changes, so a stored key does not skip a recomputation.
FACTS_VERSION = 2

WORK_KINDS = (branching.BranchKind.FEATURE.value, branching.BranchKind.HOTFIX.value)


class BranchLike(Protocol):
    """What the facts read of a branch: a Branch row, or a BranchRow of its values."""

    @property
    def pk(self) -> Any: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def state(self) -> str: ...


class BranchRow(NamedTuple):
    """A branch's fields the facts read, without building a model instance (a job reads
    every open branch's, some three times per promotion)."""

    pk: int
    name: str
    kind: str
    state: str


@dataclass
class BranchFacts:
    behind: int | None = None
    ahead: int | None = None
    missing_hotfixes: list[dict[str, Any]] = field(default_factory=list)
    depends_on: list[dict[str, Any]] = field(default_factory=list)


def _quiet(mirror: vcs.Mirror) -> vcs.Mirror:
    # These are a few read-only queries per branch on every job; recorded as steps they
    # would bury each job's own commands. The job log gets one summary line instead.
    return vcs.Mirror(
        mirror.path,
        mirror.url,
        allow_local=mirror.allow_local,
        network_timeout=settings.GIT_NETWORK_TIMEOUT_SECONDS,
        local_timeout=settings.GIT_LOCAL_TIMEOUT_SECONDS,
    )


def unmerged_commits(mirror: vcs.Mirror, staging: str, head: str) -> set[str]:
    """The commits of `head` that `staging` does not have (newest DEPENDENCY_SCAN_LIMIT)."""
    out = mirror.git("rev-list", f"--max-count={DEPENDENCY_SCAN_LIMIT}", "--end-of-options", head, f"^{staging}", "--")
    return set(out.split())


def dependencies(unmerged: dict[str, set[str]], heads: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """{branch: the branches it depends on}, from each open branch's unmerged commits
    (the commits staging does not have); `unmerged` lists the branches oldest first.

    The rule: each unmerged commit belongs to one branch, and B depends on A when B
    carries commits that belong to A (promoting B brings them into staging). Among the
    branches carrying a commit, one that carries another's head (it started from it or
    merged it) is not its owner; of those left, the oldest branch owns it. So a branch
    started from or merging feature/x depends on feature/x, never the other way round,
    and two branches that both merged feature/x do not depend on each other. Exact set
    arithmetic on one rev-list per branch, instead of a merge-base per pair.
    """
    order = list(unmerged)
    # contains[x] = the branches whose head x carries (x started from or merged them): the
    # heads among x's unmerged commits, by set intersection (not every pair of branches).
    at: dict[str, list[str]] = {}
    for name in order:
        at.setdefault(heads[name], []).append(name)
    contains = {x: {y for head in unmerged[x] & at.keys() if head != heads[x] for y in at[head]} for x in order}
    carriers: dict[str, list[str]] = {}
    for name in order:
        for commit in unmerged[name]:
            carriers.setdefault(commit, []).append(name)
    owners: dict[tuple[str, ...], str] = {}
    result: dict[str, dict[str, int]] = {name: {} for name in order}
    for found in carriers.values():
        key = tuple(found)
        if key not in owners:
            candidates = [x for x in found if not any(y in contains[x] for y in found)] or found
            owners[key] = candidates[0]  # `found` keeps the oldest-first order
        owner = owners[key]
        for name in found:
            if name != owner:
                result[name][owner] = result[name].get(owner, 0) + 1
    return {
        name: [{"name": other, "commits": count} for other, count in sorted(deps.items())]
        for name, deps in result.items()
    }


def hotfixes_on_staging(repository: Repository) -> list[Promotion]:
    """Hotfix promotions that landed on staging: unreleased, or released recently."""
    since = timezone.now() - timedelta(days=RECENT_HOTFIX_DAYS)
    landed = Promotion.objects.filter(
        repository=repository,
        branch__kind=branching.BranchKind.HOTFIX.value,
        state__in=[PromotionState.PROMOTED, PromotionState.RELEASED],
    ).exclude(branch_sha="")
    recent = landed.filter(state=PromotionState.PROMOTED) | landed.filter(promoted_at__gte=since)
    return list(recent.select_related("branch").order_by("-promoted_at", "-id")[:RECENT_HOTFIX_LIMIT])


def _open_branches(branches: Sequence[BranchLike], heads: dict[str, str]) -> list[BranchLike]:
    return sorted((b for b in branches if b.state == BranchState.ACTIVE and heads.get(b.name)), key=lambda b: b.pk)


def _set_dependencies(
    facts: dict[int, BranchFacts], open_branches: list[BranchLike], unmerged: dict[str, set[str]], heads: dict[str, str]
) -> None:
    by_name = {b.name: b for b in open_branches}
    for name, depends in dependencies(unmerged, heads).items():
        facts[by_name[name].pk].depends_on = [{**d, "branch": by_name[d["name"]].pk} for d in depends]


def _add_missing(facts: BranchFacts, hotfix: Promotion) -> None:
    if hotfix.branch.name not in [m["name"] for m in facts.missing_hotfixes]:
        facts.missing_hotfixes.append({"name": hotfix.branch.name, "promotion": hotfix.pk})


def _skips_hotfix(branch: BranchLike, hotfix: Promotion) -> bool:
    return branch.pk == hotfix.branch_id or branch.name == hotfix.branch.name


def analyse_per_branch(
    mirror: vcs.Mirror,
    repository: Repository,
    heads: dict[str, str],
    branches: Sequence[BranchLike],
    hotfixes: list[Promotion] | None = None,
) -> dict[int, BranchFacts]:
    """The facts with git processes per branch (and per hotfix × branch): the reference the
    constant-process `analyse` is tested against, and its fallback past UNMERGED_LIMIT."""
    staging = heads.get(repository.staging_branch)
    facts = {b.pk: BranchFacts() for b in branches}
    if not staging:
        return facts
    open_branches = _open_branches(branches, heads)
    unmerged: dict[str, set[str]] = {}
    for branch in open_branches:
        head = heads[branch.name]
        behind, ahead = mirror.count_between(staging, head)
        facts[branch.pk].behind, facts[branch.pk].ahead = behind, ahead
        if ahead:
            unmerged[branch.name] = unmerged_commits(mirror, staging, head)
    _set_dependencies(facts, open_branches, unmerged, heads)
    for hotfix in hotfixes_on_staging(repository) if hotfixes is None else hotfixes:
        if not mirror.has_commit(hotfix.branch_sha):
            continue
        for branch in open_branches:
            if not _skips_hotfix(branch, hotfix) and not mirror.is_ancestor(hotfix.branch_sha, heads[branch.name]):
                _add_missing(facts[branch.pk], hotfix)
    return facts


def analyse(
    mirror: vcs.Mirror,
    repository: Repository,
    heads: dict[str, str],
    branches: Sequence[BranchLike],
    notes: list[str] | None = None,
    hotfixes: list[Promotion] | None = None,
) -> dict[int, BranchFacts]:
    """The facts of each feature/hotfix branch in `branches`, by primary key, with three
    git processes (plus one per branch or hotfix the staging window cannot answer for,
    each noted in `notes`)."""
    notes = [] if notes is None else notes
    staging = heads.get(repository.staging_branch)
    facts = {b.pk: BranchFacts() for b in branches}
    open_branches = _open_branches(branches, heads)
    if not staging or not open_branches:
        return facts
    subgraph = parent_map(mirror, sorted({heads[b.name] for b in open_branches}), [staging], limit=UNMERGED_LIMIT)
    if len(subgraph) >= UNMERGED_LIMIT:
        notes.append(f"over {UNMERGED_LIMIT} unmerged commits: each branch counted on its own")
        return analyse_per_branch(mirror, repository, heads, branches, hotfixes)
    reach = {b.pk: head_reach(subgraph, heads[b.name]) for b in open_branches}
    # Every branch has what `base` has, so only staging's commits after it are read.
    base = common_ancestor(mirror, sorted(set().union(*(r.boundary for r in reach.values()))) or [staging])
    listed = parent_map(mirror, [staging], [base] if base else [], limit=STAGING_WINDOW)
    window = StagingWindow(listed, complete=len(listed) < STAGING_WINDOW)
    masks: dict[int, int | None] = {}
    unmerged: dict[str, set[str]] = {}
    for branch in open_branches:
        found = reach[branch.pk]
        # No boundary: the branch shares no history with staging (every commit of staging is behind).
        masks[branch.pk] = mask = window.reach(found.boundary) if found.boundary else None
        behind = None if mask is None else window.behind(mask)
        if behind is None:
            behind, _ = mirror.count_between(staging, heads[branch.name])
            why = (
                "forked before the window of staging's commits" if found.boundary else "shares no history with staging"
            )
            notes.append(f"{branch.name} {why}: counted on its own")
        facts[branch.pk].behind, facts[branch.pk].ahead = behind, len(found.unmerged)
        if found.unmerged:
            unmerged[branch.name] = set(found.unmerged)
    _set_dependencies(facts, open_branches, unmerged, heads)
    for hotfix in hotfixes_on_staging(repository) if hotfixes is None else hotfixes:
        sha = hotfix.branch_sha
        if sha not in subgraph and sha not in window.bit and not mirror.has_commit(sha):
            continue
        # Older than the window but in `base`'s history: every branch with a boundary has it.
        in_base: bool | None = None
        for branch in open_branches:
            if _skips_hotfix(branch, hotfix):
                continue
            mask = masks[branch.pk]
            # A commit staging lacks is in a head's history iff it is among its unmerged commits;
            # so is any commit of a branch that shares no history with staging (no boundary).
            own = reach[branch.pk]
            if sha in subgraph or not own.boundary:
                has: bool | None = sha in own.unmerged
            else:
                has = None if mask is None else window.has(mask, sha)
            if has is None and window.complete and base and mask is not None:
                if in_base is None:
                    in_base = mirror.is_ancestor(sha, base)
                has = in_base  # not in base's history, the window's, nor its own: not the head's
            if has is None:
                has = mirror.is_ancestor(sha, heads[branch.name])
                notes.append(
                    f"{hotfix.branch.name} is older than staging's window: checked on {branch.name} on its own"
                )
            if not has:
                _add_missing(facts[branch.pk], hotfix)
    return facts


def facts_key(
    repository: Repository, heads: dict[str, str], branches: Sequence[BranchLike], hotfixes: list[Promotion]
) -> str:
    """A digest of everything the facts are computed from: equal keys, equal facts."""
    inputs = [
        FACTS_VERSION,
        repository.staging_branch,
        heads.get(repository.staging_branch),
        sorted([b.pk, b.name, b.kind, b.state, heads.get(b.name)] for b in branches),
        [[h.pk, h.branch_id, h.branch.name, h.branch_sha] for h in hotfixes],
    ]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()


def _inputs(
    repository: Repository, heads: dict[str, str], settled: dict[int, str] | None = None
) -> tuple[list[BranchRow], list[Promotion], str]:
    """The branches (with the states in `settled` in place of theirs), the hotfixes and
    the key the facts for `heads` are computed from."""
    # Only what the key and the analysis read, as tuples (a model instance each cost more).
    branches = [
        BranchRow(*values)
        for values in Branch.objects.filter(repository=repository, kind__in=WORK_KINDS)
        .exclude(state__in=[BranchState.REQUESTED, BranchState.GONE])
        .values_list("pk", "name", "kind", "state")
    ]
    if settled:
        branches = [b._replace(state=settled.get(b.pk, b.state)) for b in branches]
    hotfixes = hotfixes_on_staging(repository) if heads.get(repository.staging_branch) else []
    return branches, hotfixes, facts_key(repository, heads, branches, hotfixes)


class FactsAhead:
    """The facts for the heads a job is about to push, computed in a thread (git only)
    while it pushes, from the branch rows as the job will have left them (`settled`).
    record() takes them when its key is this one: equal keys, equal facts."""

    def __init__(self, repository: Repository, mirror: vcs.Mirror, heads: dict[str, str], settled: dict[int, str]):
        branches, hotfixes, self.key = _inputs(repository, heads, settled)
        quiet = _quiet(mirror)

        def compute() -> tuple[dict[int, BranchFacts], list[str]]:
            notes: list[str] = []
            return analyse(quiet, repository, heads, branches, notes, hotfixes), notes

        self._facts = Background(compute, "facts-ahead", nice=AHEAD_NICE)

    def take(self, key: str) -> tuple[dict[int, BranchFacts], list[str]] | None:
        """The facts and notes, if computed for `key` and without error; else None."""
        if key != self.key:
            return None
        try:
            return self._facts.result()
        except (vcs.GitError, ValueError):
            return None  # computed again by the caller, which reports what fails

    def wait(self) -> None:
        self._facts.wait()


def record(
    ctx: JobContext,
    repository: Repository,
    mirror: vcs.Mirror,
    heads: dict[str, str],
    ahead: FactsAhead | None = None,
) -> None:
    """Compute the facts of the repository's feature/hotfix branches and store those that
    changed; nothing at all (no git) when their inputs are those of the last computation.
    `ahead`: the facts a job started computing before it pushed these heads."""
    branches, hotfixes, key = _inputs(repository, heads)
    if Repository.objects.filter(pk=repository.pk, facts_key=key).exists():
        ctx.log(f"branches: {len(branches)} unchanged since the last check against {repository.staging_branch}\n")
        return
    taken = ahead.take(key) if ahead is not None else None
    if taken is not None:
        facts, notes = taken
    else:
        notes = []
        facts = analyse(_quiet(mirror), repository, heads, branches, notes, hotfixes)
    changed = 0
    fields = ("behind", "ahead", "missing_hotfixes", "depends_on")
    with ctx.atomic():
        # The stored key vouches for every row: so two jobs of one repository store in turn,
        # each comparing with the rows as the other left them, not as they were read above.
        # Locks are taken branch rows first (by id), then the repository row, as every job
        # that records heads, a promotion or a release does: no two jobs wait on each other.
        locked = lock_branch_values(repository, fields)
        stored = {pk: tuple(values) for pk, *values in locked if pk in facts}
        rows = []
        for branch in branches:
            new = facts[branch.pk]
            values = tuple(getattr(new, k) for k in fields)
            if branch.pk in stored and stored[branch.pk] != values:
                rows.append((branch.pk, values))
        _store_facts(rows, fields)
        changed = len(rows)
        Repository.objects.filter(pk=repository.pk).update(facts_key=key)
    stale = sum(1 for f in facts.values() if f.behind)
    for note in notes:
        ctx.log(f"branches: {note}\n")
    ctx.log(
        f"branches: {len(branches)} checked against {repository.staging_branch}, {stale} behind, {changed} changed\n"
    )


def _store_facts(rows: list[tuple[int, tuple[Any, ...]]], fields: tuple[str, ...]) -> None:
    """Write the changed facts with one executemany: one statement for Django, and no
    CASE expression per row and field to build (bulk_update spent more time on that than
    the database on the writes). Inside the caller's transaction, the rows locked."""
    if not rows:
        return
    quote = connection.ops.quote_name
    model_fields = [cast(Field, Branch._meta.get_field(name)) for name in fields]
    sets = ", ".join(f"{quote(str(f.column))} = %s" for f in model_fields)
    sql = f"UPDATE {quote(Branch._meta.db_table)} SET {sets} WHERE {quote('id')} = %s"
    with connection.cursor() as cursor:
        cursor.executemany(
            sql,
            [
                [f.get_db_prep_save(value, connection) for f, value in zip(model_fields, values, strict=True)] + [pk]
                for pk, values in rows
            ],
        )
