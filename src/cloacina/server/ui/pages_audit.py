"""The web UI's Audit page (DESIGN §12, admins only): the audit log newest first, filtered by
action, actor, outcome, time and (keys of every tenant) tenant, paged by cursor, and the
filtered rows exported as JSONL or CSV by the service's own export (the CLI's
``cloacina audit export``). A key bound to one tenant sees its tenant's rows only, as the
API's ``GET /api/v1/audit``."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from cloacina.errors import CloacinaError, RequestError
from cloacina.server.routes_executions import parse_time
from cloacina.server.ui.pages import SECURITY_HEADERS, page, to_signin
from cloacina.server.ui.session import Viewer, viewer_of
from cloacina.service.audit import AuditPage

router = APIRouter(include_in_schema=False)

#: Rows per page.
PAGE_SIZE = 50
OUTCOMES = ("ok", "failed")
FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


class AuditFilters:
    """The page's filters, from its query string (times from ``datetime-local``: UTC)."""

    def __init__(self, request: Request, viewer: Viewer) -> None:
        q = request.query_params
        self.action = (q.get("action") or "").strip() or None
        self.actor = (q.get("actor") or "").strip() or None
        self.outcome = q.get("outcome") or None
        self.since_text = q.get("since") or ""
        self.until_text = q.get("until") or ""
        self.cursor = q.get("cursor") or None
        self.limit = int(q.get("limit") or PAGE_SIZE)
        # A key bound to one tenant reads that tenant's rows only; one of every tenant
        # reads them all, or one tenant's.
        bound = viewer.identity.key_tenant
        self.tenant = bound if bound is not None else (q.get("tenant") or None)
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise RequestError("outcome must be ok or failed", field="outcome")
        self.since = self._time("since", self.since_text)
        self.until = self._time("until", self.until_text)

    @staticmethod
    def _time(field: str, value: str) -> datetime | None:
        return parse_time(field, value) if value else None

    def service_filters(self) -> dict[str, Any]:
        """The filters as the service's list_audit and export_audit take them."""
        return {
            "since": self.since,
            "until": self.until,
            "action": self.action,
            "tenant": self.tenant,
            "actor": self.actor,
            "outcome": self.outcome,
        }

    def query(self, **override: str | None) -> str:
        values: dict[str, str | None] = {
            "action": self.action,
            "actor": self.actor,
            "outcome": self.outcome,
            "since": self.since_text,
            "until": self.until_text,
            "tenant": self.tenant,
            "limit": None if self.limit == PAGE_SIZE else str(self.limit),
        }
        values.update(override)
        return urlencode({k: v for k, v in values.items() if v})


def refuse(request: Request, viewer: Viewer) -> Response:
    message = f"The audit log is for admins; this key is a {viewer.identity.role}'s."
    return page(request, "message.html", status=403, viewer=viewer, message=message)


@router.get("/audit")
async def audit_page(request: Request) -> Response:
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    if not viewer.is_admin:
        return refuse(request, viewer)
    try:
        filters = AuditFilters(request, viewer)
        found: AuditPage = await run_in_threadpool(
            lambda: viewer.runner.list_audit(
                limit=filters.limit, cursor=filters.cursor, **filters.service_filters()
            )
        )
    except (CloacinaError, ValueError) as exc:
        return page(request, "message.html", status=400, viewer=viewer, message=str(exc))
    next_query = filters.query(cursor=found.next_cursor) if found.next_cursor else None
    return page(
        request,
        "audit.html",
        viewer=viewer,
        entries=found.items,
        filters=filters,
        outcomes=OUTCOMES,
        next_query=next_query,
    )


@router.get("/audit/export")
async def audit_export(request: Request) -> Response:
    """The filtered rows as a download: ``format=jsonl`` (default) or ``csv``."""
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    if not viewer.is_admin:
        return refuse(request, viewer)
    fmt = request.query_params.get("format") or "jsonl"
    try:
        if fmt not in FORMATS:
            raise RequestError("format must be jsonl or csv", field="format")
        filters = AuditFilters(request, viewer)
    except (CloacinaError, ValueError) as exc:
        return page(request, "message.html", status=400, viewer=viewer, message=str(exc))
    lines = viewer.runner.export_audit(fmt, **filters.service_filters())  # type: ignore[arg-type]
    headers = dict(SECURITY_HEADERS)
    headers["Content-Disposition"] = f'attachment; filename="audit.{fmt}"'
    return StreamingResponse(iterate_in_threadpool(lines), media_type=FORMATS[fmt], headers=headers)


PATHS = frozenset({"/audit", "/audit/export"})

__all__ = ["PATHS", "router"]
