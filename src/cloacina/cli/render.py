"""Tables and blocks for a run: its header, tasks, tracebacks, context and event log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from cloacina.cli.formatting import (
    elapsed,
    fmt_duration,
    fmt_time,
    safe_text,
    status_text,
    tail,
)
from cloacina.cli.json_output import print_json_block
from cloacina.model.status import TaskStatus, WorkflowResult
from cloacina.service.types import ExecutionEvent


def new_table(title: str) -> Table:
    """A compact table (no vertical borders) with a bold title on the left."""
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )


def shrink_to_fit(console: Console, table: Table, floors: Mapping[str, int]) -> None:
    """Make ``table`` fit the console by cutting, with an ellipsis, the columns named in
    ``floors`` (dates, URLs, host names: their header to the narrowest width they may
    take), in that order, before anything else gives way. Names and ids are never cut:
    their columns fold (``overflow="fold"``), so what is left over wraps inside them."""
    width = console.options.max_width
    unbounded = console.options.update_width(1_000_000)  # measure what each cell wants
    excess = Measurement.get(console, unbounded, table).maximum - width
    for column in table.columns:
        if excess <= 0:
            return
        floor = floors.get(str(column.header))
        if floor is None:
            continue
        natural = max(
            Measurement.get(console, unbounded, cell).maximum
            for cell in (column.header, *column.cells)
        )
        cut = min(excess, natural - floor)
        if cut > 0:
            column.max_width = natural - cut
            column.no_wrap = True
            column.overflow = "ellipsis"
            excess -= cut


def render_header(
    console: Console, result: WorkflowResult, package_version: str | None = None
) -> None:
    """The run's id, workflow, version, status, times and error. A packaged workflow's
    version is its package's (``package_version``), with the workflow's hash after it."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")  # ids and names are shown whole, wrapped if need be
    grid.add_row("execution", safe_text(result.execution_id))
    workflow = safe_text(result.workflow_name)
    if result.package != "embedded" or result.tenant != "public":
        workflow.append(f"  ({result.tenant}::{result.package})", style="dim")
    grid.add_row("workflow", workflow)
    version = Text(result.workflow_version[:12])
    if package_version is not None:
        version = safe_text(package_version)
        version.append(f"  (workflow {result.workflow_version[:12]})", style="dim")
    grid.add_row("version", version)
    grid.add_row("status", status_text(result.status))
    grid.add_row("started", fmt_time(result.started_at))
    grid.add_row("finished", fmt_time(result.finished_at))
    grid.add_row(
        "duration", fmt_duration(elapsed(result.started_at, result.finished_at, result.status))
    )
    if result.error:
        grid.add_row("error", safe_text(result.error, "red", multiline=True))
    console.print(grid)


def render_tasks(
    console: Console,
    result: WorkflowResult,
    max_attempts: Mapping[str, int] | None = None,
    *,
    recoveries: bool | None = None,
) -> None:
    """One row per task: status, attempts, (recoveries,) duration, error or skip reason.

    ``recoveries=None`` shows that column only when a task was recovered.
    """
    limits = max_attempts or {}
    show_recoveries = (
        any(t.recoveries for t in result.tasks.values()) if recoveries is None else recoveries
    )
    table = new_table("Tasks")
    table.add_column("task", overflow="fold", min_width=8)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right", no_wrap=True)
    if show_recoveries:
        table.add_column("recoveries", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("error / skip reason", overflow="fold")
    for tid, t in result.tasks.items():
        limit = limits.get(tid)
        attempts = f"{t.attempts}/{limit}" if limit else str(t.attempts)
        if t.error:
            note = safe_text(t.error, "red", multiline=True)
        elif t.skip_reason:
            note = safe_text(t.skip_reason, "yellow", multiline=True)
        else:
            note = Text("")
        if t.instances is not None:  # a mapped task: its instances counted, not listed
            note = Text.assemble(
                safe_text(t.instances.describe(), "dim"), "\n" if note else "", note
            )
        cells: list[Text | str] = [safe_text(tid), status_text(t.status), attempts]
        if show_recoveries:
            cells.append(str(t.recoveries))
        cells.append(fmt_duration(elapsed(t.started_at, t.finished_at, t.status)))
        cells.append(note)
        table.add_row(*cells)
    console.print(table)


def render_tracebacks(console: Console, result: WorkflowResult, lines: int = 12) -> None:
    """The traceback tails of the run's failed tasks."""
    for tid, t in result.tasks.items():
        if t.status == TaskStatus.FAILED and t.traceback:
            console.print(safe_text(f"Traceback of failed task {tid!r} (last lines):", "bold"))
            console.print(safe_text(tail(t.traceback, lines), "dim", multiline=True))


def render_context(console: Console, title: str, data: Mapping[str, Any]) -> None:
    console.print(Text(title, style="bold"))
    if data:
        print_json_block(console, dict(data))
    else:
        console.print(Text("(empty)", style="dim"))


# ---- events ----------------------------------------------------------------------------------
def event_detail(event: ExecutionEvent) -> str:
    """An event's detail as ``key=value`` pairs (raw: print it with ``safe_text``)."""
    parts = []
    for key, value in event.detail.items():
        if key in ("duration", "retry_in") and isinstance(value, int | float):
            parts.append(f"{key}={fmt_duration(float(value))}")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def render_events(console: Console, events: list[ExecutionEvent], start: datetime | None) -> None:
    """The event log of a run, times relative to ``start`` (else its first event)."""
    table = new_table("Events")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("task", overflow="fold", min_width=8)
    table.add_column("event", no_wrap=True)
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    base = start if start is not None else (events[0].at if events else None)
    for e in events:
        offset = (e.at - base).total_seconds() if base is not None else 0.0
        table.add_row(
            f"+{offset:.3f}s",
            safe_text(e.task_id or "-"),
            safe_text(e.type, event_style(e.type)),
            "" if e.attempt is None else str(e.attempt),
            safe_text(event_detail(e)),
        )
    console.print(table)


def event_style(name: str) -> str:
    if name.endswith(("_completed",)):
        return "green"
    if name.endswith(("_failed",)):
        return "red"
    if name.endswith(("_skipped", "_retry_scheduled", "_paused", "_cancelled")):
        return "yellow"
    return "cyan"
