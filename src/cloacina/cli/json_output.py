"""JSON output: the ``--json`` form of runs, tasks and events, and printing JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click
from rich.console import Console
from rich.highlighter import JSONHighlighter
from rich.text import Text

from cloacina.cli.formatting import escape_json_controls, iso
from cloacina.model.status import MapSummary, TaskResult, WorkflowResult
from cloacina.service.types import ExecutionEvent


def dump_json(data: Any) -> str:
    """Indented JSON; characters that could drive a terminal are ``\\u`` escapes (a task's
    text shows up here too)."""
    return escape_json_controls(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, nothing else (for ``--json``)."""
    click.echo(dump_json(data))


def print_json_block(console: Console, data: Any) -> None:
    """Pretty JSON (coloured on a terminal)."""
    # Not console.print_json: it parses and re-encodes the text, undoing dump_json's escapes.
    text = Text(dump_json(data), no_wrap=True)
    console.print(JSONHighlighter()(text) if console.is_terminal else text, soft_wrap=True)


def task_json(task: TaskResult, max_attempts: int | None) -> dict[str, Any]:
    return {
        "status": str(task.status),
        "attempts": task.attempts,
        "max_attempts": max_attempts,
        "recoveries": task.recoveries,
        "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at),
        "duration": None if task.duration is None else round(task.duration, 6),
        "error": task.error,
        "skip_reason": task.skip_reason,
        **({} if task.instances is None else {"instances": instances_json(task.instances)}),
    }


def instances_json(summary: MapSummary) -> dict[str, Any]:
    """A mapped task's instances: counts by status and the first failed indexes."""
    return {
        "total": summary.total,
        "counts": dict(summary.counts),
        "failed_indexes": list(summary.failed_indexes),
        "failed_more": summary.failed_more,
    }


def result_json(
    result: WorkflowResult,
    max_attempts: Mapping[str, int] | None = None,
    events: list[ExecutionEvent] | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of a run (the ``--json`` output of ``run`` and ``show``)."""
    limits = max_attempts or {}
    data: dict[str, Any] = {
        "execution_id": result.execution_id,
        "workflow": result.workflow_name,
        "version": result.workflow_version,
        "package": result.package,
        "tenant": result.tenant,
        "status": str(result.status),
        "error": result.error,
        "started_at": iso(result.started_at),
        "finished_at": iso(result.finished_at),
        "duration": None if result.duration is None else round(result.duration, 6),
        "tasks": {tid: task_json(t, limits.get(tid)) for tid, t in result.tasks.items()},
        "final_context": result.final_context,
    }
    if events is not None:
        data["events"] = [event_json(e) for e in events]
    return data


def event_json(event: ExecutionEvent) -> dict[str, Any]:
    return {
        "id": event.seq,
        "time": iso(event.at),
        "task": event.task_id,
        "event": event.type,
        "attempt": event.attempt,
        "detail": event.detail or None,
    }
