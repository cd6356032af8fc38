"""``cloacina workers list``: the worker processes of a database (tenant), as they last
reported themselves, with the tasks each holds now (read from the task rows)."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.text import Text

from cloacina.cli.consoles import out_console
from cloacina.cli.formatting import fmt_duration, fmt_time, iso, status_text
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import db_option, tenant_option
from cloacina.cli.remote import open_service, server_options, where_of
from cloacina.cli.render import new_table, shrink_to_fit
from cloacina.service.types import WorkerInfo


@click.group("workers")
def workers_group() -> None:
    """Inspect the worker processes (`cloacina worker`) that execute tasks."""


def fmt_age(seconds: float) -> str:
    """``2.1s ago``, ``3m 05s ago``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s ago"
    return f"{fmt_duration(seconds)} ago"


def worker_json(worker: WorkerInfo, now: float) -> dict[str, Any]:
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "status": worker.state,
        "recorded_status": worker.status,
        "started_at": iso(worker.started_at),
        "last_heartbeat": iso(worker.last_heartbeat_at),
        "heartbeat_age": round(max(0.0, now - worker.last_heartbeat_at.timestamp()), 3),
        "stopped_at": iso(worker.stopped_at),
        "running_tasks": worker.running_tasks,
        "max_tasks": worker.max_tasks,
        "version": worker.version,
    }


_STYLES = {"silent": "bold yellow", "stopped": "dim"}


@workers_group.command("list")
@db_option
@tenant_option
@server_options
@click.option("--all", "include_stopped", is_flag=True, help="Include stopped workers.")
@click.option("--json", "as_json", is_flag=True, help="Print the workers as JSON.")
@click.pass_context
def list_command(
    ctx: click.Context, db: str | None, tenant: str | None, include_stopped: bool, as_json: bool
) -> None:
    """List the workers of the database: running ones (and stopped ones with --all).

    A running worker whose last heartbeat is older than 10s is shown as `silent`: it
    probably died without stopping, and its tasks are taken back once their claims go stale.
    Its tasks column counts the tasks it holds now (0 once another worker took them back).
    """
    with open_service(ctx, db, tenant) as runner:
        rows = runner.list_workers(include_stopped=include_stopped)
    now = time.time()
    if as_json:
        echo_json([worker_json(r, now) for r in rows])
        return
    console = out_console()
    where = where_of(ctx, db, tenant)
    if not rows:
        which = "" if include_stopped else "running "
        hint = "" if include_stopped else "; --all shows stopped ones too"
        console.print(Text(f"No {which}workers in {where}{hint}.", style="dim"))
        return
    table = new_table(f"Workers in {where}")
    table.add_column("id", overflow="fold", min_width=12)
    table.add_column("host", no_wrap=True)
    table.add_column("pid", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("heartbeat", justify="right", no_wrap=True)
    table.add_column("tasks", justify="right", no_wrap=True)
    for worker in rows:
        status = worker.state
        status_cell = (
            Text(status, style=_STYLES[status]) if status in _STYLES else status_text(status)
        )
        table.add_row(
            Text(worker.id),
            Text(worker.host),
            str(worker.pid),
            status_cell,
            fmt_time(worker.started_at),
            fmt_age(now - worker.last_heartbeat_at.timestamp()),
            f"{worker.running_tasks}/{worker.max_tasks}",
        )
    # At 80 columns the host and the start time give way; the id and the pid never do.
    shrink_to_fit(console, table, {"host": 8, "started": 11})
    console.print(table)
