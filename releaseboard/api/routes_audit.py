"""The audit log for those who may read it: keyset pages, exports, verification."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from ninja import Query, Router, Schema

from releaseboard.audit import export, selectors
from releaseboard.audit.verify import verify
from releaseboard.releases.models import Repository
from releaseboard.roles import Perm
from releaseboard.tokens.models import Scope

from . import access, schemas

router = Router(tags=["audit"])


class AuditFilter(Schema):
    repo: str = ""
    actor: str = ""
    action: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def event_filter(self) -> selectors.EventFilter:
        repository_id = None
        if self.repo:
            repository = Repository.objects.filter(name=self.repo).first()
            repository_id = repository.pk if repository else -1
        return selectors.EventFilter(
            repository_id=repository_id,
            actor=self.actor,
            action=self.action,
            date_from=self.date_from,
            date_to=self.date_to,
        )


def _event_out(e: Any) -> dict[str, Any]:
    data = {f: getattr(e, f) for f in schemas.AuditEventOut.model_fields if f not in ("actor", "repository")}
    data.update(actor=e.actor_name, repository=e.repository_name)
    return data


@router.get("/audit", response=schemas.AuditPageOut, summary="Audit events, newest first (keyset pages)")
def audit_list(
    request: HttpRequest,
    filters: Query[AuditFilter],
    before: int | None = None,
    after: int | None = None,
    size: int = 50,
) -> dict[str, Any]:
    access.require_perm(request, Perm.VIEW_AUDIT, Scope.READ)
    page = selectors.page_of_events(filters.event_filter(), before=before, after=after, size=max(1, min(size, 500)))
    return {
        "events": [_event_out(e) for e in page.items],
        "older_before": page.older_before,
        "newer_after": page.newer_after,
    }


@router.get("/audit/export", summary="Export audit events as CSV or JSON Lines", response={200: str})
def audit_export(
    request: HttpRequest, filters: Query[AuditFilter], format: Literal["csv", "jsonl"] = "jsonl"
) -> StreamingHttpResponse:
    access.require_perm(request, Perm.VIEW_AUDIT, Scope.READ)
    lines = export.csv_lines if format == "csv" else export.jsonl_lines
    content_type = "text/csv; charset=utf-8" if format == "csv" else "application/jsonl; charset=utf-8"
    response = StreamingHttpResponse(lines(filters.event_filter().events()), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{format}"'
    return response


@router.get("/audit/verify", response=schemas.AuditVerifyOut, summary="Verify the hash chain and checkpoints")
def audit_verify(request: HttpRequest) -> dict[str, Any]:
    access.require_perm(request, Perm.VIEW_AUDIT, Scope.READ)
    report = verify()
    return {
        "ok": report.ok,
        "report": {
            "summary": report.summary,
            "events": report.events,
            "head_seq": report.head_seq,
            "head_hash": report.head_hash,
            "first_bad_seq": report.first_bad_seq,
            "problems": [{"seq": p.seq, "text": p.text} for p in report.problems],
        },
    }
