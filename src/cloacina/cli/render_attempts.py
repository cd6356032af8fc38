"""The attempts table of ``cloacina executions show``: every attempt of the tasks that ran
more than once (retries, recoveries, reruns), earlier ones included."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console

from cloacina.cli.formatting import fmt_duration, fmt_time, safe_text, status_text
from cloacina.cli.render import new_table
from cloacina.model.status import WorkflowResult
from cloacina.service.types import TaskAttempt

#: At most this many attempts are listed (the rest: `GET .../attempts`, or --json).
MAX_ROWS = 200


def retried_tasks(result: WorkflowResult) -> list[str]:
    """The tasks of the run that had more than one attempt."""
    return [tid for tid, t in result.tasks.items() if t.attempts > 1]


def render_attempts(
    console: Console, attempts: Sequence[TaskAttempt], tasks: Sequence[str]
) -> None:
    """One row per attempt of ``tasks``, in the order they ended."""
    wanted = set(tasks)
    rows = [a for a in attempts if a.task_id in wanted]
    table = new_table("Attempts")
    table.add_column("task", overflow="fold", min_width=8)
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("error / skip reason", overflow="fold")
    for a in rows[:MAX_ROWS]:
        note = a.error or a.skip_reason or ""
        table.add_row(
            safe_text(a.task_id),
            str(a.attempt),
            status_text(a.outcome),
            fmt_time(a.started_at),
            fmt_duration(a.duration),
            safe_text(note, "red" if a.error else "yellow", multiline=True),
        )
    console.print(table)
    if len(rows) > MAX_ROWS:
        console.print(f"... and {len(rows) - MAX_ROWS} more attempts (see --json)")


def attempts_json(attempts: Sequence[TaskAttempt]) -> list[dict[str, Any]]:
    """The attempts as JSON objects (times in ISO 8601)."""
    return [
        {
            "task_id": a.task_id,
            "attempt": a.attempt,
            "outcome": a.outcome,
            "recovery": a.recovery,
            "started_at": a.started_at.isoformat() if a.started_at else None,
            "finished_at": a.finished_at.isoformat() if a.finished_at else None,
            "error": a.error,
            "skip_reason": a.skip_reason,
        }
        for a in attempts
    ]
