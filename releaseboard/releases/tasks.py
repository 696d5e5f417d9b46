"""Celery glue for periodic work of the releases app."""

from __future__ import annotations

from celery import shared_task

from releaseboard.releases import sync


@shared_task(name="releaseboard.releases.poll_remotes", ignore_result=True)
def poll_remotes() -> None:
    sync.poll_remotes()
