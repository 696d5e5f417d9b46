"""Request and response bodies for environments, deployments, incidents and the DORA
metrics. Field names are stable: `rb deploy … -o json` prints these documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema

from releaseboard.deployments.models import Deployment, Environment, Incident
from releaseboard.deployments.selectors import EnvironmentCard
from releaseboard.metrics.compute import Report

from .schemas import JobOut, _name, job_out


class DeploymentOut(Schema):
    id: int
    environment: str
    repository: str
    tier: str
    version: str
    label: str
    sha: str
    kind: str
    state: str
    state_message: str
    hotfix: bool
    reason: str
    override_reason: str
    previous: str | None = Field(description="What the environment ran before this one succeeded (its label)")
    requested_by: str | None
    job_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class DeploymentStartedOut(Schema):
    deployment: DeploymentOut
    job: JobOut | None


class EnvironmentOut(Schema):
    name: str
    tier: str
    source: str
    protected: bool
    auto_deploy: bool
    locked: bool
    locked_reason: str
    locked_by: str | None
    locked_at: datetime | None
    pinned: bool = Field(description="Running a rollback: deploying a newer version needs forward=true")
    current: DeploymentOut | None
    active: DeploymentOut | None
    open_incidents: list[int]


class EnvironmentDetailOut(Schema):
    environment: EnvironmentOut
    history: list[DeploymentOut]


class DeployIn(Schema):
    version: str = Field("", description="X.Y.Z; empty: the latest release (or the staging head, as configured)")
    reason: str = ""
    override_reason: str = Field("", description="Production without a staging deployment (release managers, Ops)")
    forward: bool = Field(False, description="Deploy a newer version over a rollback on purpose")


class RollbackIn(Schema):
    to_version: str
    reason: str


class LockIn(Schema):
    reason: str


class IncidentIn(Schema):
    deployment: int = Field(description="The id of the production deployment that caused it")
    started_at: datetime | None = Field(None, description="Default: now")
    description: str
    link: str = ""


class IncidentCloseIn(Schema):
    note: str


class IncidentOut(Schema):
    id: int
    repository: str
    cause: int = Field(description="The id of the deployment that caused it")
    environment: str
    version: str
    started_at: datetime
    description: str
    link: str
    open: bool
    opened_by: str | None
    resolved_at: datetime | None
    resolved_by_deployment: int | None
    closed_by: str | None
    close_note: str


class FigureOut(Schema):
    key: str
    title: str
    value: float | None = Field(description="None: no data in the window. Lead time and restore in seconds")
    numerator: float
    denominator: float
    numerator_label: str
    denominator_label: str
    band: str


class WeekOut(Schema):
    start: datetime
    deployments: int
    failures: int


class MetricsOut(Schema):
    repository: str | None = Field(description="None: all repositories")
    days: int
    since: datetime
    until: datetime
    figures: list[FigureOut]
    weeks: list[WeekOut]


def deployment_out(d: Deployment) -> dict[str, Any]:
    return {
        "id": d.pk,
        "environment": d.environment.name,
        "repository": d.environment.repository.name,
        "tier": d.tier,
        "version": d.version,
        "label": d.label,
        "sha": d.sha,
        "kind": d.kind,
        "state": d.state,
        "state_message": d.state_message,
        "hotfix": d.hotfix,
        "reason": d.reason,
        "override_reason": d.override_reason,
        "previous": d.previous.label if d.previous_id and d.previous else None,
        "requested_by": _name(d.requested_by),
        "job_id": d.job_id,
        "created_at": d.created_at,
        "started_at": d.started_at,
        "finished_at": d.finished_at,
    }


def started_out(d: Deployment) -> dict[str, Any]:
    return {"deployment": deployment_out(d), "job": job_out(d.job) if d.job_id and d.job else None}


def environment_out(card: EnvironmentCard) -> dict[str, Any]:
    e = card.environment
    return {
        "name": e.name,
        "tier": e.tier,
        "source": e.source,
        "protected": e.protected,
        "auto_deploy": e.auto_deploy,
        "locked": e.is_locked,
        "locked_reason": e.locked_reason,
        "locked_by": _name(e.locked_by),
        "locked_at": e.locked_at,
        "pinned": card.pinned,
        "current": deployment_out(card.current) if card.current else None,
        "active": deployment_out(card.active) if card.active else None,
        "open_incidents": [i.pk for i in card.open_incidents],
    }


def incident_out(i: Incident) -> dict[str, Any]:
    return {
        "id": i.pk,
        "repository": i.repository.name,
        "cause": i.cause_id,
        "environment": i.cause.environment.name,
        "version": i.cause.label,
        "started_at": i.started_at,
        "description": i.description,
        "link": i.link,
        "open": i.is_open,
        "opened_by": _name(i.opened_by),
        "resolved_at": i.resolved_at,
        "resolved_by_deployment": i.resolved_by_deployment_id,
        "closed_by": _name(i.closed_by),
        "close_note": i.close_note,
    }


def metrics_out(report: Report, repository: str | None) -> dict[str, Any]:
    return {
        "repository": repository,
        "days": report.days,
        "since": report.since,
        "until": report.until,
        "figures": [
            {
                "key": f.key,
                "title": f.title,
                "value": f.value,
                "numerator": f.numerator,
                "denominator": f.denominator,
                "numerator_label": f.numerator_label,
                "denominator_label": f.denominator_label,
                "band": f.band,
            }
            for f in report.figures
        ],
        "weeks": [{"start": w.start, "deployments": w.deployments, "failures": w.failures} for w in report.weeks],
    }


def card_for(environment: Environment, cards: list[EnvironmentCard]) -> EnvironmentCard:
    return next(c for c in cards if c.environment.pk == environment.pk)
