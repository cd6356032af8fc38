"""``executions watch`` without a terminal (a pipe, a file): one plain line per change."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from cloacina.cli.formatting import elapsed, escape_controls, fmt_duration
from cloacina.cli.watch_view import (
    SETTLED,
    attempt_text,
    first_line,
    retry_pending,
    run_elapsed,
    status_counts,
    tasks_word,
)
from cloacina.model.status import TERMINAL_EXECUTION, to_datetime
from cloacina.store.records import ExecutionRow, TaskRow


class ChangePrinter:
    """``executions watch`` without a terminal: one plain line per change of a task's state
    (or of the run's status), times relative to the run's start."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.tasks: dict[str, tuple[str, int, int, bool]] = {}
        self.run_status: str | None = None
        self.hint: str | None = None

    def _print(self, text: str) -> None:
        # One line per change: what came from a task is escaped, newlines included.
        self.console.print(Text(escape_controls(text)), soft_wrap=True)

    def _stamp(self, row: ExecutionRow, at: float | None) -> str:
        base = row.started_at if row.started_at is not None else row.created_at
        when = at if at is not None else time.time()
        return f"[+{max(0.0, when - base):.2f}s]"

    def start(self, row: ExecutionRow, tasks: Sequence[TaskRow]) -> None:
        self._print(
            f"watching execution {row.id} (workflow {row.workflow_name}, "
            f"{tasks_word(len(tasks) or row.tasks_total)}): {row.status}"
        )
        self.run_status = row.status

    def update(self, row: ExecutionRow, tasks: Sequence[TaskRow]) -> None:
        for task in tasks:
            key = (task.status, task.attempt, task.recovery_count, retry_pending(task))
            before = self.tasks.get(task.task_id)
            if before == key:
                continue
            self.tasks[task.task_id] = key
            if before is None and task.status == "pending":
                continue  # nothing happened to it yet
            self._task_line(row, task)
        if row.status != self.run_status:
            self.run_status = row.status
            if row.status not in TERMINAL_EXECUTION:
                self._print(f"{self._stamp(row, None)} execution {row.status}")

    def note(self, row: ExecutionRow, hint: str | None) -> None:
        """Say why the run is stuck, once, and again when that changes."""
        if hint != self.hint and hint is not None:
            self._print(f"{self._stamp(row, None)} note: {hint}")
        self.hint = hint

    def _task_line(self, row: ExecutionRow, task: TaskRow) -> None:
        tid, status = task.task_id, task.status
        at: float | None = None
        if status == "running":
            at = task.started_at
            text = f"{tid} running (attempt {attempt_text(task)})"
        elif status == "completed":
            at = task.finished_at
            took = elapsed(to_datetime(task.started_at), to_datetime(task.finished_at), task.status)
            text = f"{tid} completed in {fmt_duration(took)}"
            if task.attempt > 1:
                text += f" (attempt {attempt_text(task)})"
        elif status == "failed":
            at = task.finished_at
            text = f"{tid} failed (attempt {attempt_text(task)}): {first_line(task.error)}"
        elif status == "skipped":
            at = task.finished_at
            text = f"{tid} skipped: {task.skip_reason or 'no reason recorded'}"
        elif retry_pending(task):
            wait = max(0.0, (task.retry_at or 0.0) - time.time())
            text = (
                f"{tid} failed (attempt {attempt_text(task)}): {first_line(task.error)}; "
                f"retrying in {fmt_duration(wait)}"
            )
        else:
            text = f"{tid} {status}"
        self._print(f"{self._stamp(row, at)} {text}")

    def finish(self, row: ExecutionRow, tasks: Sequence[TaskRow]) -> None:
        counts = status_counts(tasks)
        parts = [f"{counts[s]} {s}" for s in ("completed", "failed", "skipped") if counts.get(s)]
        unsettled = len(tasks) - sum(counts.get(s, 0) for s in SETTLED)
        if unsettled:
            parts.append(f"{unsettled} not run")
        line = (
            f"execution {row.id} {row.status} in {fmt_duration(run_elapsed(row))}: "
            f"{', '.join(parts) or 'no tasks'}"
        )
        if row.error:
            line += f"; error: {first_line(row.error)}"
        self._print(line)
