"""Celery glue only: the periodic signed checkpoint of the audit chain."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import close_old_connections

from releaseboard.audit import checkpoint

logger = logging.getLogger(__name__)


@shared_task(name="releaseboard.audit.checkpoint", ignore_result=True)
def write_checkpoint() -> None:
    close_old_connections()
    try:
        written = checkpoint.write_if_changed(created_by="releaseboard (beat)")
    except checkpoint.CheckpointRefused as exc:
        # Loud, and no signature: signing a broken chain would bless the tampering.
        logger.error("audit checkpoint refused: %s", exc)
        return
    if written is not None:
        logger.info("audit checkpoint at seq %s written to %s", written.seq, written.file_name)


@shared_task(name="releaseboard.audit.verify", ignore_result=True)
def run_verification(run_id: int) -> None:
    from releaseboard.audit import runs

    close_old_connections()
    runs.execute(run_id)


@shared_task(name="releaseboard.audit.verify_periodically", ignore_result=True)
def request_verification() -> None:
    from releaseboard.audit import runs

    close_old_connections()
    runs.request(requested_by="releaseboard (beat)")
