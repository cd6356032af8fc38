"""What ``executions watch`` shows on a terminal (a progress bar and a table of the tasks),
and the small readings of a run's rows it shares with the plain log."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cloacina.cli.formatting import elapsed, fmt_duration, safe_text, status_text
from cloacina.cli.render import new_table
from cloacina.model.status import TERMINAL_EXECUTION, TERMINAL_TASK, TaskResult, WorkflowResult

#: Task statuses that count as settled in the progress bar.
SETTLED = TERMINAL_TASK


def first_line(text: str | None) -> str:
    lines = (text or "").strip().split("\n")  # a carriage return is shown, escaped
    return lines[0] if lines else ""


def attempt_text(task: TaskResult) -> str:
    limit = task.max_attempts or 1
    attempt = f"{task.attempts}/{limit}" if limit > 1 else str(task.attempts)
    if task.recoveries:
        attempt += f", recovery {task.recoveries}"
    return attempt


def retry_pending(task: TaskResult) -> bool:
    return task.status == "ready" and task.retry_at is not None and task.error is not None


def status_counts(tasks: Sequence[TaskResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    return counts


def tasks_word(n: int) -> str:
    return "1 task" if n == 1 else f"{n} tasks"


def run_elapsed(run: WorkflowResult) -> float | None:
    return elapsed(run.started_at, run.finished_at, run.status)


def watch_view(run: WorkflowResult, *, unicode: bool, hint: str | None = None) -> RenderableType:
    """What ``executions watch`` shows on a terminal: the run's status and elapsed time, a
    progress bar over the settled tasks, why it is stuck (``hint``) and one row per task."""
    now = time.time()
    tasks = list(run.tasks.values())
    header = Text.assemble(
        (run.workflow_name, "bold"),
        "  ",
        (run.execution_id, "dim"),
        "  ",
    )
    header.append_text(status_text(run.status, icon=unicode))
    took = run_elapsed(run)
    header.append("  " + (fmt_duration(took) if took is not None else "waiting to start"))

    total = len(tasks) or run.tasks_total
    counts = status_counts(tasks)
    settled = sum(counts.get(s, 0) for s in SETTLED)
    failed = run.status in ("failed", "cancelled") or counts.get("failed", 0) > 0
    bar = ProgressBar(
        total=max(total, 1),
        completed=settled,
        width=40,
        complete_style="red" if failed else "cyan",
        finished_style="red" if failed else "green",
    )
    summary = Text(f" {settled}/{total} settled")
    parts = [
        f"{counts[s]} {s}" for s in ("running", "completed", "failed", "skipped") if counts.get(s)
    ]
    if parts:
        summary.append("  (" + ", ".join(parts) + ")", style="dim")
    progress = Table.grid(padding=(0, 1))
    progress.add_row(bar, summary)

    table = new_table("")
    table.add_column("task", overflow="fold", min_width=8)
    table.add_column("status", no_wrap=True, min_width=11)
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True, min_width=8)
    table.add_column("error / skip reason", overflow="fold")
    for task in tasks:
        if retry_pending(task):
            retry_at = task.retry_at.timestamp() if task.retry_at is not None else now
            wait = max(0.0, retry_at - now)
            status = Text.assemble(
                status_text("ready", icon=unicode), (f" (retry in {fmt_duration(wait)})", "dim")
            )
        else:
            status = status_text(task.status, icon=unicode)
        if task.status == "skipped":
            note = safe_text(task.skip_reason or "", "yellow")
        else:
            note = safe_text(first_line(task.error), "red")
        if task.instances is not None:  # a mapped task: its instances counted, not listed
            note = Text.assemble(
                safe_text(task.instances.describe(), "dim"), " " if note else "", note
            )
        table.add_row(
            safe_text(task.task_id),
            status,
            attempt_text(task) if task.attempts else "-",
            fmt_duration(elapsed(task.started_at, task.finished_at, task.status)),
            note,
        )
    items: list[RenderableType] = [header, progress]
    if hint:
        items.append(safe_text(f"note: {hint}", "yellow"))
    items.append(table)
    if run.error and run.status in TERMINAL_EXECUTION:
        items.append(safe_text(f"error: {run.error}", "red", multiline=True))
    return Group(*items)
