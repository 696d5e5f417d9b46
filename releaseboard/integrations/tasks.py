"""Celery glue only."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections

from releaseboard.integrations import outbox


@shared_task(name="releaseboard.integrations.deliver", ignore_result=True, acks_late=True)
def deliver_task(delivery_id: int) -> None:
    close_old_connections()
    outbox.deliver(delivery_id)


@shared_task(name="releaseboard.integrations.sweep", ignore_result=True)
def sweep_task() -> None:
    close_old_connections()
    outbox.sweep()
