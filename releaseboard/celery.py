"""The Celery application. Tasks live in releaseboard.jobs.tasks; this file only wires."""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_init, worker_process_init
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES

# filesystem:// is the embedded default broker; use the variant that writes atomically.
TRANSPORT_ALIASES["filesystem"] = "releaseboard.fs_broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releaseboard.settings")

app = Celery("releaseboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Two queues so that long test runs never hold up short git operations, and test
# capacity can be scaled on machines of its own.
app.conf.task_queues = (Queue("git"), Queue("tests"))
app.conf.task_routes = {
    "releaseboard.jobs.reap": {"queue": "git"},
    "releaseboard.releases.poll_remotes": {"queue": "git"},
    "releaseboard.audit.checkpoint": {"queue": "git"},
    "releaseboard.integrations.deliver": {"queue": "git"},
    "releaseboard.integrations.sweep": {"queue": "git"},
    "releaseboard.audit.verify": {"queue": "git"},
    "releaseboard.audit.verify_periodically": {"queue": "git"},
}
app.autodiscover_tasks(
    ["releaseboard.jobs", "releaseboard.releases", "releaseboard.audit", "releaseboard.integrations"]
)


@worker_init.connect
@worker_process_init.connect
def drop_inherited_git_environment(**_: object) -> None:
    """A worker started from a git hook or a git alias inherits GIT_DIR, GIT_INDEX_FILE
    and the like. GitPython starts each git from a copy of this process's environment,
    where they would redirect commands aimed at a mirror: drop them before any job runs."""
    from releaseboard.vcs import drop_inherited_git_environment as drop

    if dropped := drop():
        logging.getLogger(__name__).warning("Ignoring inherited git variables: %s", ", ".join(sorted(dropped)))


def _beat_schedule() -> dict[str, dict[str, object]]:
    from django.conf import settings

    return {
        "reap-stale-jobs": {"task": "releaseboard.jobs.reap", "schedule": float(settings.REAPER_INTERVAL_SECONDS)},
        "poll-remotes": {
            "task": "releaseboard.releases.poll_remotes",
            "schedule": float(settings.SYNC_INTERVAL_SECONDS),
        },
        # Pins the audit chain's head in a signed file, so a rewritten or cut chain is caught.
        "audit-checkpoint": {
            "task": "releaseboard.audit.checkpoint",
            "schedule": float(settings.AUDIT_CHECKPOINT_INTERVAL_SECONDS),
        },
        # Sends webhook deliveries that are due and retries those whose worker died.
        "webhook-sweep": {"task": "releaseboard.integrations.sweep", "schedule": 60.0},
        # The page checks only what came after the latest checkpoint; this walks the
        # whole chain now and then, so an edit of an old event is found without anyone asking.
        "audit-full-verification": {
            "task": "releaseboard.audit.verify_periodically",
            "schedule": float(settings.AUDIT_FULL_VERIFICATION_INTERVAL_SECONDS),
        },
    }


app.conf.beat_schedule = _beat_schedule()
