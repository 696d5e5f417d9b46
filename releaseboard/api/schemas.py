"""Request and response bodies. Field names are stable: the rb CLI's JSON output is
these documents, and scripts read them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from releaseboard.jobs.models import Job
from releaseboard.releases.models import Branch, Promotion, Release, Repository


class RepositoryOut(Schema):
    name: str
    master_branch: str
    staging_branch: str
    feature_prefix: str
    hotfix_prefix: str
    latest_version: str
    four_eyes: bool
    synced_at: datetime | None
    sync_error: str


class BranchOut(Schema):
    id: int
    name: str
    kind: str
    state: str
    head_sha: str
    base_sha: str
    purpose: str
    ticket_url: str
    requested_by: str | None
    behind: int | None
    ahead: int | None
    missing_hotfixes: list[Any]
    depends_on: list[Any]


class PromotionOut(Schema):
    id: int
    branch: str
    branch_id: int
    title: str
    description: str
    state: str
    state_message: str
    merge_check: str
    conflict_files: list[Any]
    staging_sha: str
    branch_sha: str
    merge_sha: str
    promoted_sha: str
    requested_by: str | None
    promoted_by: str | None
    created_at: datetime
    promoted_at: datetime | None


class ReleaseOut(Schema):
    id: int
    version: str
    tag: str
    sha: str
    previous_master_sha: str
    notes: str
    state: str
    state_message: str
    released_by: str | None
    created_at: datetime
    released_at: datetime | None


class JobStepOut(Schema):
    seq: int
    name: str
    command: str
    exit_code: int | None
    outcome: str
    started_at: datetime
    finished_at: datetime | None


class JobOut(Schema):
    id: int
    kind: str
    title: str
    state: str
    reason: str
    message: str
    repository: str
    subject_type: str
    subject_id: int | None
    attempt: int
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    log_lines: int


class JobDetailOut(JobOut):
    steps: list[JobStepOut]


class HeadOut(Schema):
    name: str
    sha: str
    test: str | None = Field(None, description="result of the latest test run of this exact commit")


class RadarCellOut(Schema):
    branch: str
    other: str
    state: str
    conflicts: list[Any]


class RadarOut(Schema):
    conflicting_pairs: int
    pending_pairs: int
    cells: list[RadarCellOut]


class BoardOut(Schema):
    repository: RepositoryOut
    master: HeadOut | None
    staging: HeadOut | None
    features: list[BranchOut]
    hotfixes: list[BranchOut]
    promotions: list[PromotionOut]
    unreleased: list[PromotionOut]
    active_jobs: list[JobOut]
    radar: RadarOut


class BranchRequestIn(Schema):
    kind: Literal["feature", "hotfix"]
    name: str = Field(..., min_length=1, max_length=200)
    purpose: str = Field(..., min_length=1)
    ticket_url: str = ""


class BranchStartedOut(Schema):
    branch: BranchOut
    job: JobOut | None


class PromotionRequestIn(Schema):
    branch: str = Field(..., description="the branch's full name, e.g. feature/search")
    title: str = Field("", description="default: the first line of the branch's purpose")
    description: str = ""


class PromotionStartedOut(Schema):
    promotion: PromotionOut
    job: JobOut | None


class ReleasePreviewOut(Schema):
    master_sha: str
    staging_sha: str
    current_version: str
    proposed_version: str
    promotions: list[PromotionOut]
    commits: list[Any]
    test: str | None
    refusal: str
    notes: str = Field(..., description="the proposed release notes (Markdown)")


class ReleaseIn(Schema):
    version: str = Field("", description="default: the proposed version")
    notes: str | None = Field(None, description="default: the proposed notes")


class ReleaseStartedOut(Schema):
    release: ReleaseOut
    job: JobOut | None


class LogLineOut(Schema):
    seq: int
    text: str


class JobLogOut(Schema):
    job: JobOut
    lines: list[LogLineOut]
    next_after: int = Field(..., description="pass as ?after= to get the lines that follow")
    done: bool = Field(..., description="the job has ended and every line has been sent")


class AuditEventOut(Schema):
    seq: int
    created_at: datetime
    actor: str
    action: str
    repository: str
    object_type: str
    object_id: int | None
    object_repr: str
    from_sha: str
    to_sha: str
    result: str
    message: str
    details: dict[str, Any]


class AuditPageOut(Schema):
    events: list[AuditEventOut]
    older_before: int | None = Field(None, description="pass as ?before= for the next (older) page")
    newer_after: int | None = Field(None, description="pass as ?after= for the previous (newer) page")


class AuditVerifyOut(Schema):
    ok: bool
    report: dict[str, Any]


class MeOut(Schema):
    username: str
    roles: list[str]
    token: str | None
    scopes: list[str] | None


def _name(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def repository_out(r: Repository) -> dict[str, Any]:
    return {f: getattr(r, f) for f in RepositoryOut.model_fields}


def branch_out(b: Branch) -> dict[str, Any]:
    data = {f: getattr(b, f) for f in BranchOut.model_fields if f != "requested_by"}
    data["requested_by"] = _name(b.requested_by)
    return data


def promotion_out(p: Promotion) -> dict[str, Any]:
    skip = {"branch", "requested_by", "promoted_by"}
    data = {f: getattr(p, f) for f in PromotionOut.model_fields if f not in skip}
    data.update(branch=p.branch.name, requested_by=_name(p.requested_by), promoted_by=_name(p.promoted_by))
    return data


def release_out(r: Release) -> dict[str, Any]:
    data = {f: getattr(r, f) for f in ReleaseOut.model_fields if f != "released_by"}
    data["released_by"] = _name(r.released_by)
    return data


def job_out(j: Job, steps: bool = False) -> dict[str, Any]:
    skip = {"repository", "created_by", "steps"}
    data = {f: getattr(j, f) for f in JobOut.model_fields if f not in skip}
    data.update(repository=j.scope_name, created_by=_name(j.created_by))
    if steps:
        data["steps"] = [{f: getattr(s, f) for f in JobStepOut.model_fields} for s in j.steps.all()]
    return data
