"""Incidents: Ops mark a production deployment as the cause; a later production
deployment resolves it (deployments.runners), or Ops close it by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from releaseboard.audit.service import record as audit_record
from releaseboard.deployments.models import Deployment, DeploymentState, Incident, Tier
from releaseboard.releases.services import Refused
from releaseboard.roles import Perm, require


def open_incident(
    deployment: Deployment, *, actor: Any, started_at: datetime | None, description: str, link: str = ""
) -> Incident:
    """Ops mark a production deployment as the cause of an incident."""
    require(actor, Perm.MANAGE_INCIDENTS)
    if deployment.tier != Tier.PRODUCTION or deployment.state != DeploymentState.SUCCEEDED:
        raise Refused("Only a production deployment that succeeded can be the cause of an incident.")
    if not description.strip():
        raise Refused("Describe the incident in a line.", field="description")
    if link and not link.lower().startswith(("https://", "http://")):
        raise Refused("A link starts with https:// or http://.", field="link")
    started = started_at or timezone.now()
    if deployment.finished_at and started < deployment.finished_at:
        raise Refused("The incident cannot start before the deployment that caused it finished.", field="started_at")
    if started > timezone.now():
        raise Refused("The start time is in the future.", field="started_at")
    with transaction.atomic():
        incident = Incident.objects.create(
            repository=deployment.repository,
            cause=deployment,
            started_at=started,
            description=description.strip(),
            link=link.strip(),
            opened_by=actor,
        )
        audit_record(
            "incident.opened",
            actor=actor,
            repository=deployment.repository,
            obj=incident,
            message=description.strip()[:1000],
            details={"cause": deployment.pk, "started_at": started.isoformat()},
        )
    return incident


def close_incident(incident: Incident, *, actor: Any, note: str) -> Incident:
    """Close an incident by hand (it was fixed without a deployment)."""
    require(actor, Perm.MANAGE_INCIDENTS)
    if not note.strip():
        raise Refused("Say how it was resolved.", field="note")
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if not incident.is_open:
            raise Refused(f"Incident #{incident.pk} is resolved already.")
        incident.resolved_at, incident.closed_by, incident.close_note = timezone.now(), actor, note.strip()
        incident.save(update_fields=["resolved_at", "closed_by", "close_note"])
        audit_record("incident.closed", actor=actor, repository=incident.repository, obj=incident, message=note[:1000])
    return incident
