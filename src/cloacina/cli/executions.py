"""``cloacina executions list|show``: the history of workflow runs in a database."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from cloacina.cli.common import (
    db_option,
    echo_json,
    elapsed,
    fmt_duration,
    fmt_time,
    iso,
    new_table,
    open_existing_store,
    out_console,
    render_context,
    render_events,
    render_header,
    render_tasks,
    render_tracebacks,
    resolve_db,
    resolve_execution,
    result_json,
    status_text,
)
from cloacina.model.context import loads_context
from cloacina.model.status import ExecutionStatus, to_datetime
from cloacina.runner import build_result
from cloacina.store.records import ExecutionRow

#: How many characters of an execution id ``executions list`` shows (``show`` takes prefixes).
SHORT_ID = 8


@click.group("executions")
def executions_group() -> None:
    """Inspect workflow executions (runs) stored in the database."""


def _row_json(row: ExecutionRow) -> dict[str, Any]:
    started, finished = to_datetime(row.started_at), to_datetime(row.finished_at)
    duration = elapsed(started, finished, row.status)
    return {
        "execution_id": row.id,
        "workflow": row.workflow_name,
        "version": row.workflow_version,
        "package": row.package,
        "tenant": row.tenant,
        "status": row.status,
        "error": row.error,
        "created_at": iso(to_datetime(row.created_at)),
        "started_at": iso(started),
        "finished_at": iso(finished),
        "duration": None if duration is None else round(duration, 6),
        "tasks_total": row.tasks_total,
        "tasks_done": row.tasks_total - row.tasks_remaining,
        "tasks_failed": row.tasks_failed,
    }


@executions_group.command("list")
@db_option
@click.option(
    "--status",
    type=click.Choice([s.value for s in ExecutionStatus]),
    help="Only runs with this status.",
)
@click.option("--workflow", "-w", metavar="NAME", help="Only runs of this workflow.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many runs to show (newest first).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_context
def list_command(
    ctx: click.Context,
    db: str | None,
    status: str | None,
    workflow: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List recent workflow executions, newest first."""
    url = resolve_db(ctx, db)
    store = open_existing_store(url)
    try:
        rows = store.list_executions(limit=limit, status=status, workflow_name=workflow)
    finally:
        store.close()
    if as_json:
        echo_json([_row_json(r) for r in rows])
        return
    console = out_console()
    if not rows:
        filters = [f"status {status}" if status else "", f"workflow {workflow}" if workflow else ""]
        which = " with " + " and ".join(f for f in filters if f) if status or workflow else ""
        console.print(Text(f"No workflow executions{which} in {url}.", style="dim"))
        return
    table = new_table(f"Executions in {url}")
    table.add_column("id", no_wrap=True)
    table.add_column("workflow", overflow="fold", min_width=8)
    table.add_column("status", no_wrap=True)
    table.add_column("tasks", justify="right", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for row in rows:
        started, finished = to_datetime(row.started_at), to_datetime(row.finished_at)
        table.add_row(
            row.id[:SHORT_ID],
            Text(row.workflow_name),
            status_text(row.status),
            f"{row.tasks_total - row.tasks_remaining}/{row.tasks_total}",
            fmt_time(started),
            fmt_duration(elapsed(started, finished, row.status)),
        )
    console.print(table)
    if len(rows) == limit:
        console.print(Text(f"(newest {limit}; use --limit to see more)", style="dim"))


@executions_group.command("show")
@click.argument("execution_id", metavar="ID")
@db_option
@click.option("--events", is_flag=True, help="Also show the run's event log.")
@click.option("--context", "with_context", is_flag=True, help="Also show input and final context.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.pass_context
def show_command(
    ctx: click.Context,
    execution_id: str,
    db: str | None,
    events: bool,
    with_context: bool,
    as_json: bool,
) -> None:
    """Show one workflow execution: its status, tasks and (with --events) its events.

    ID may be a unique prefix of the execution id, such as the 8 characters that
    `executions list` shows.
    """
    url = resolve_db(ctx, db)
    store = open_existing_store(url)
    try:
        row = resolve_execution(store, execution_id)
        task_rows = store.get_tasks(row.id)
        event_rows = store.get_events(row.id) if events else None
    finally:
        store.close()
    result = build_result(row, task_rows)
    max_attempts = {t.task_id: t.max_attempts for t in task_rows}
    input_context = loads_context(row.input_context)
    if as_json:
        data = result_json(result, max_attempts, event_rows)
        data["input_context"] = input_context
        echo_json(data)
        return
    console = out_console()
    render_header(console, result)
    console.print()
    render_tasks(console, result, max_attempts, recoveries=True)
    render_tracebacks(console, result)
    if event_rows is not None:
        console.print()
        render_events(console, event_rows, row.started_at)
    if with_context:
        console.print()
        render_context(console, "Input context", input_context)
        render_context(console, "Final context", result.final_context)
