"""Job kinds and their runners. The jobs app knows no kind; others register theirs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from releaseboard.jobs.execution import JobContext
    from releaseboard.jobs.models import Job


@dataclass(frozen=True)
class JobKind:
    name: str
    runner: Callable[[JobContext], str | None]
    queue: str = "git"
    # Called inside the transaction that writes the job's final state, so the domain
    # object it is about changes together with the job (e.g. a promotion fails with it).
    on_final: Callable[[Job], None] | None = None


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> None:
    _KINDS[kind.name] = kind


def get(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"no runner registered for job kind {name!r}") from None


def queue_for(name: str) -> str:
    return get(name).queue


def also_on_final(name: str, listener: Callable[[Job], None]) -> None:
    """Call `listener` too when a job of kind `name` ends, after the kind's own on_final
    and in the same transaction: how an app above (deployments) hears that a promotion
    or release landed without the app that owns the kind importing it."""
    kind = get(name)
    own = kind.on_final

    def both(job: Job) -> None:
        if own is not None:
            own(job)
        listener(job)

    _KINDS[name] = replace(kind, on_final=both)
