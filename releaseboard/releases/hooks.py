"""Extension points of the release flow.

`releases` runs the flow; other apps add rules to it (CI statuses as gates) without
`releases` importing them: each registers its checks here when Django starts (its
AppConfig.ready), so the import arrows point one way only, from those apps to
`releases`.

A check answers None (go on), `Wait` (not yet: the job waits without holding a worker
and asks again) or `Stop` (refused, with a sentence that says why and what to do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Wait:
    message: str
    retry_in: float = 15.0


@dataclass(frozen=True)
class Stop:
    message: str


Verdict = Wait | Stop | None
Check = Callable[..., Verdict]
# Prepared before a sync's transaction (it may read git), returns what to write inside it,
# given the protected branches this job must leave alone (another job recorded them since).
Preparer = Callable[..., Callable[[set[str]], None]]


class CheckPoint:
    """A named place in the flow where registered checks are asked, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._checks: list[Check] = []

    def register(self, check: Check) -> Check:
        if check not in self._checks:
            self._checks.append(check)
        return check

    def ask(self, *args: Any, **kwargs: Any) -> Verdict:
        """The first Stop, else the first Wait, else None."""
        waiting: Wait | None = None
        for check in self._checks:
            verdict = check(*args, **kwargs)
            if isinstance(verdict, Stop):
                return verdict
            if isinstance(verdict, Wait) and waiting is None:
                waiting = verdict
        return waiting


# (promotion, since) — before the tested merge commit is pushed to staging; `since` is
# when the promote was asked for (a gate's timeout runs from then).
before_promote = CheckPoint("before_promote")
# (repository, sha) — before master moves to `sha` (a release).
before_release = CheckPoint("before_release")
# (promotion) — after a promotion's merge commit passed its tests.
after_tested = CheckPoint("after_tested")


class Observers:
    """Functions called, in order, when something happened in the flow; their answers are
    returned in a list."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._functions: list[Callable[..., Any]] = []

    def register(self, function: Callable[..., Any]) -> Callable[..., Any]:
        if function not in self._functions:
            self._functions.append(function)
        return function

    def notify(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [function(*args, **kwargs) for function in self._functions]

    def any(self, *args: Any, **kwargs: Any) -> bool:
        return any(function(*args, **kwargs) for function in self._functions)


# (repository, mirror, heads, recorded) — a fetch saw these heads; master/staging were
# `recorded` before it. Each returns a function run inside the sync's transaction with
# the protected branches to leave alone (policy: drift alarms).
heads_fetched = Observers("heads_fetched")
# (repository, mirror, say, ahead=()) — the recorded heads changed, after the transaction
# (radar). Each may return a function to call once the job has done its own work on the
# new heads (branch facts): the radar's merges run meanwhile. Pass the answers to finish().
# `ahead`: staging_moving's answers, when the job pushed staging itself.
heads_recorded = Observers("heads_recorded")


# (repository, mirror, heads, settled) — a job is about to push staging to its head in
# `heads`, then write the branch states in `settled` ({branch id: state}: the promoted
# branch's). Each may start work on the new head in a thread of its own (git only: see
# releaseboard.background) and return it; once the move is recorded, the answers are
# passed to heads_recorded's observers as `ahead`. An answer with a wait() is waited for
# when the job is done with the move, whether or not it was used.
staging_moving = Observers("staging_moving")


def finish(answers: list[Any]) -> None:
    """Call the functions observers returned to be called later (see heads_recorded)."""
    for answer in answers:
        if callable(answer):
            answer()


# (repository, branch_name) — does anything hold this branch (an open drift alarm)?
branch_held = Observers("branch_held")
# (repository) — does anything outside want tested merge commits pushed for it to build
# (refs/releaseboard/candidates/<promotion id>)? Integrations says yes when a repository
# requires a CI status on the merge commit.
candidates_wanted = Observers("candidates_wanted")
# (ctx, mirror, promotion, staging, branch_sha, merge=…, merge_sha=…) — a promotion's merge
# was computed (clean or conflicted): review keeps its commits, files and diff.
merge_checked = Observers("merge_checked")
# (ctx, report_path) — a build or test command ran; it may have written a JUnit report
# where the environment variable JUNIT_ENV said.
tests_ran = Observers("tests_ran")
# The variable that tells a test command where to write a JUnit XML report.
JUNIT_ENV = "RELEASEBOARD_JUNIT_XML"
