"""Sent by audit.service.record() inside the transaction that wrote the event, so a
receiver's own writes (e.g. a webhook delivery row) commit or roll back with it."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with event=<AuditEvent>.
event_recorded = Signal()
