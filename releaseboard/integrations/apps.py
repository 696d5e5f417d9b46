from __future__ import annotations

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "releaseboard.integrations"
    label = "integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Outgoing webhooks follow the audit log: every state change writes one audit
        # event, and the subscriptions that want its kind get a delivery in the same
        # transaction (audit knows nothing of webhooks; it only sends the signal).
        from releaseboard.audit.signals import event_recorded
        from releaseboard.integrations import outbox

        event_recorded.connect(outbox.on_audit_event, dispatch_uid="integrations.webhooks")
        # CI statuses gate promotions and releases at the release flow's check points.
        from releaseboard.integrations import gates

        gates.register()
