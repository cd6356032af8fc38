"""The JSON of the API's answers (DESIGN §9), from the service layer's values.

Each shape has the fields the contract names and, after them, what the value also holds (a
task's skip reason, a package's sha256), which :mod:`cloacina.remote.decode` reads back.
Times are ISO 8601 in UTC with ``Z``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from cloacina.model.status import TaskResult, WorkflowResult
from cloacina.registry.registry import PackageInfo
from cloacina.server.events import iso
from cloacina.service import PackageDetail, TaskAttempt, WorkerInfo, WorkflowInfo


def epoch_iso(value: float | None) -> str | None:
    return None if value is None else iso(datetime.fromtimestamp(value, UTC))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value.astimezone(UTC))
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value  # a StrEnum
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclass_json(value)  # e.g. a mapped task's instance counts
    return value


def dataclass_json(value: Any) -> dict[str, Any]:
    """A frozen dataclass's fields as JSON values."""
    return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}


def task_json(task: TaskResult) -> dict[str, Any]:
    return dataclass_json(task)


def summary_json(result: WorkflowResult) -> dict[str, Any]:
    """An execution in a list: no tasks, no contexts."""
    return {
        "execution_id": result.execution_id,
        "workflow_name": result.workflow_name,
        "workflow_version": result.workflow_version,
        "status": result.status.value,
        "started_at": _plain(result.started_at),
        "finished_at": _plain(result.finished_at),
        "error": result.error,
        "package": result.package,
        "tenant": result.tenant,
        "created_at": _plain(result.created_at),
        "tasks_total": result.tasks_total,
        "tasks_done": result.tasks_done,
        "tasks_failed": result.tasks_failed,
    }


def result_json(result: WorkflowResult) -> dict[str, Any]:
    """An execution's detail: the ``WorkflowResult`` fields of DESIGN §3."""
    doc = summary_json(result)
    doc["final_context"] = result.final_context
    doc["input_context"] = result.input_context
    doc["tasks"] = {tid: task_json(t) for tid, t in result.tasks.items()}
    doc["children"] = list(result.children)
    doc["parent_execution_id"] = result.parent_execution_id
    doc["parent_task_id"] = result.parent_task_id
    return doc


def attempt_json(attempt: TaskAttempt) -> dict[str, Any]:
    return dataclass_json(attempt)


def package_json(info: PackageInfo) -> dict[str, Any]:
    return {
        "package_id": info.id,
        "name": info.package,
        "version": info.version,
        "is_default": info.default,
        "signed": info.signer is not None,
        "registered_at": epoch_iso(info.registered_at),
        "workflows": list(info.workflows),
        "sha256": info.sha256,
        "signer": info.signer,
        "promoted": info.promoted,
        "workflow_versions": [list(pair) for pair in info.workflow_versions],
    }


def package_detail_json(detail: PackageDetail) -> dict[str, Any]:
    return {
        "package_id": detail.id,
        "name": detail.package,
        "version": detail.version,
        "is_default": detail.default,
        "signed": detail.signer is not None,
        "registered_at": _plain(detail.registered_at),
        "workflows": list(detail.workflows),
        "sha256": detail.sha256,
        "signer": detail.signer,
        "promoted": detail.promoted,
        "manifest": detail.manifest,
    }


def workflow_json(info: WorkflowInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "package": info.package,
        "description": info.description,
        "tasks": [{"id": t.id, "dependencies": list(t.dependencies)} for t in info.tasks],
    }


def worker_json(info: WorkerInfo) -> dict[str, Any]:
    return dataclass_json(info)


__all__ = [
    "attempt_json",
    "dataclass_json",
    "epoch_iso",
    "package_detail_json",
    "package_json",
    "result_json",
    "summary_json",
    "worker_json",
    "workflow_json",
]
