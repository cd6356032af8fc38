"""The JSON of the HTTP API (DESIGN §9) back into the values ``DefaultRunner`` returns.

Every reader takes what the contract promises and, where the server sends more (a task's
skip reason, a package's sha256), that too; a field missing from an older server gets its
dataclass default, so a newer client still reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cloacina.model.status import (
    ExecutionStatus,
    MapSummary,
    TaskResult,
    TaskStatus,
    WorkflowResult,
)
from cloacina.registry.registry import PackageInfo
from cloacina.service.audit import AuditEntry, AuditPage
from cloacina.service.keys import ApiKeyInfo, Role
from cloacina.service.types import (
    ExecutionEvent,
    ExecutionPage,
    PackageDetail,
    TaskAttempt,
    TaskInfo,
    WorkerInfo,
    WorkflowInfo,
)

Json = Mapping[str, Any]


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``...Z``) as an aware UTC datetime; epoch seconds are read too."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_epoch(value: Any) -> float | None:
    """An ISO 8601 time as epoch seconds (what the runner's info types hold)."""
    moment = parse_time(value)
    return None if moment is None else moment.timestamp()


def format_time(value: datetime | float | None) -> str | None:
    """A query parameter's time: ISO 8601 in UTC with ``Z``."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


def task_result(task_id: str, doc: Json) -> TaskResult:
    return TaskResult(
        task_id=str(doc.get("task_id") or task_id),
        status=TaskStatus(doc["status"]),
        attempts=int(doc.get("attempts") or 0),
        error=_str_or_none(doc.get("error")),
        started_at=parse_time(doc.get("started_at")),
        finished_at=parse_time(doc.get("finished_at")),
        skip_reason=_str_or_none(doc.get("skip_reason")),
        recoveries=int(doc.get("recoveries") or 0),
        traceback=_str_or_none(doc.get("traceback")),
        max_attempts=_int_or_none(doc.get("max_attempts")),
        worker_id=_str_or_none(doc.get("worker_id")),
        retry_at=parse_time(doc.get("retry_at")),
        instances=map_summary(doc.get("instances")),
    )


def map_summary(doc: Any) -> MapSummary | None:
    """A mapped task's instance counts (None for another task)."""
    if not isinstance(doc, Mapping):
        return None
    return MapSummary(
        total=int(doc.get("total") or 0),
        counts={str(k): int(v) for k, v in (doc.get("counts") or {}).items()},
        failed_indexes=tuple(int(i) for i in doc.get("failed_indexes") or ()),
        failed_more=bool(doc.get("failed_more")),
    )


def workflow_result(doc: Json) -> WorkflowResult:
    """A run: an execution's detail (with ``tasks`` and ``final_context``) or a list's
    summary (without them)."""
    tasks = doc.get("tasks") or {}
    return WorkflowResult(
        execution_id=str(doc["execution_id"]),
        workflow_name=str(doc["workflow_name"]),
        workflow_version=str(doc.get("workflow_version") or ""),
        status=ExecutionStatus(doc["status"]),
        final_context=dict(doc.get("final_context") or {}),
        tasks={str(tid): task_result(str(tid), t) for tid, t in tasks.items()},
        error=_str_or_none(doc.get("error")),
        started_at=parse_time(doc.get("started_at")),
        finished_at=parse_time(doc.get("finished_at")),
        package=str(doc.get("package") or "embedded"),
        tenant=str(doc.get("tenant") or "public"),
        created_at=parse_time(doc.get("created_at")),
        tasks_total=int(doc.get("tasks_total") or 0),
        tasks_done=int(doc.get("tasks_done") or 0),
        tasks_failed=int(doc.get("tasks_failed") or 0),
        input_context=_dict_or_none(doc.get("input_context")),
        children=[str(c) for c in doc.get("children") or ()],
        parent_execution_id=_str_or_none(doc.get("parent_execution_id")),
        parent_task_id=_str_or_none(doc.get("parent_task_id")),
    )


def package_info(doc: Json) -> PackageInfo:
    signer = doc.get("signer")
    if signer is None and doc.get("signed"):
        signer = "unknown"  # an older server says only that it is signed
    return PackageInfo(
        id=str(doc["package_id"]),
        package=str(doc["name"]),
        version=str(doc["version"]),
        sha256=str(doc.get("sha256") or ""),
        workflows=tuple(str(w) for w in doc.get("workflows") or ()),
        signer=_str_or_none(signer),
        registered_at=parse_epoch(doc.get("registered_at")) or 0.0,
        workflow_versions=tuple(
            (str(pair[0]), str(pair[1])) for pair in doc.get("workflow_versions") or ()
        ),
        default=bool(doc.get("is_default", False)),
        promoted=bool(doc.get("promoted", False)),
    )


def _time_required(value: Any) -> datetime:
    moment = parse_time(value)
    return moment if moment is not None else datetime.fromtimestamp(0, UTC)


def execution_page(doc: Json) -> ExecutionPage:
    return ExecutionPage(
        items=[workflow_result(item) for item in doc.get("items") or ()],
        next_cursor=_str_or_none(doc.get("next_cursor")),
    )


def task_attempt(doc: Json) -> TaskAttempt:
    return TaskAttempt(
        execution_id=str(doc["execution_id"]),
        task_id=str(doc["task_id"]),
        attempt=int(doc["attempt"]),
        outcome=str(doc["outcome"]),
        recovery=int(doc.get("recovery") or 0),
        worker_id=_str_or_none(doc.get("worker_id")),
        started_at=parse_time(doc.get("started_at")),
        finished_at=parse_time(doc.get("finished_at")),
        error=_str_or_none(doc.get("error")),
        traceback=_str_or_none(doc.get("traceback")),
        skip_reason=_str_or_none(doc.get("skip_reason")),
    )


def execution_event(
    doc: Json, *, seq: int | None = None, kind: str | None = None
) -> ExecutionEvent:
    """An event from its JSON (an SSE event's data, with its ``id`` and ``event`` given as
    ``seq`` and ``kind`` when the data lacks them)."""
    detail = doc.get("detail")
    attempt = doc.get("attempt")
    return ExecutionEvent(
        seq=int(doc["seq"]) if doc.get("seq") is not None else int(seq or 0),
        execution_id=str(doc.get("execution_id") or ""),
        type=str(doc.get("type") or kind or ""),
        at=_time_required(doc.get("at")),
        task_id=_str_or_none(doc.get("task_id")),
        attempt=None if attempt is None else int(attempt),
        detail=dict(detail) if isinstance(detail, Mapping) else {},
    )


def worker_info(doc: Json) -> WorkerInfo:
    state = str(doc.get("state") or doc.get("status") or "")
    return WorkerInfo(
        id=str(doc["id"]),
        host=str(doc.get("host") or ""),
        pid=int(doc.get("pid") or 0),
        state=state,
        status=str(doc.get("status") or ("running" if state == "silent" else state)),
        started_at=_time_required(doc.get("started_at")),
        last_heartbeat_at=_time_required(doc.get("last_heartbeat_at")),
        running_tasks=int(doc.get("running_tasks") or 0),
        max_tasks=int(doc.get("max_tasks") or 0),
        version=str(doc.get("version") or ""),
        stopped_at=parse_time(doc.get("stopped_at")),
    )


def package_detail(doc: Json) -> PackageDetail:
    info = package_info(doc)
    manifest = doc.get("manifest")
    return PackageDetail(
        id=info.id,
        package=info.package,
        version=info.version,
        sha256=info.sha256,
        workflows=list(info.workflows),
        signer=info.signer,
        registered_at=_time_required(doc.get("registered_at")),
        default=info.default,
        promoted=info.promoted,
        manifest=dict(manifest) if isinstance(manifest, Mapping) else {},
    )


def workflow_info(doc: Json) -> WorkflowInfo:
    return WorkflowInfo(
        name=str(doc["name"]),
        version=str(doc.get("version") or ""),
        package=str(doc.get("package") or "embedded"),
        description=str(doc.get("description") or ""),
        tasks=[
            TaskInfo(str(t["id"]), [str(d) for d in t.get("dependencies") or ()])
            for t in doc.get("tasks") or ()
        ],
    )


def api_key_info(doc: Json) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=str(doc["id"]),
        name=str(doc.get("name") or ""),
        role=Role(doc["role"]),
        tenant=_str_or_none(doc.get("tenant")),
        prefix=str(doc.get("prefix") or ""),
        created_at=_time_required(doc.get("created_at")),
        created_by=str(doc.get("created_by") or ""),
        expires_at=parse_time(doc.get("expires_at")),
        revoked_at=parse_time(doc.get("revoked_at")),
        last_used_at=parse_time(doc.get("last_used_at")),
    )


def audit_entry(doc: Json) -> AuditEntry:
    detail = doc.get("detail")
    return AuditEntry(
        id=int(doc.get("id") or 0),
        at=_time_required(doc.get("at")),
        actor=str(doc.get("actor") or ""),
        action=str(doc.get("action") or ""),
        target=str(doc.get("target") or ""),
        outcome=str(doc.get("outcome") or ""),
        tenant=_str_or_none(doc.get("tenant")),
        key_id=_str_or_none(doc.get("key_id")),
        client=_str_or_none(doc.get("client")),
        request_id=_str_or_none(doc.get("request_id")),
        detail=dict(detail) if isinstance(detail, Mapping) else None,
    )


def audit_page(doc: Json) -> AuditPage:
    return AuditPage(
        items=[audit_entry(item) for item in doc.get("items") or ()],
        next_cursor=_str_or_none(doc.get("next_cursor")),
    )
