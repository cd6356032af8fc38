"""``cloacina executions list``: recent workflow runs, newest first, narrowed by status,
workflow and age."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click
from rich.text import Text

from cloacina.cli.consoles import out_console
from cloacina.cli.databases import open_existing_store
from cloacina.cli.durations import parse_duration
from cloacina.cli.execution_lookup import SHORT_ID, where
from cloacina.cli.formatting import elapsed, fmt_duration, fmt_time, iso, safe_text, status_text
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.render import new_table, shrink_to_fit
from cloacina.model.status import ExecutionStatus, to_datetime
from cloacina.store.records import ExecutionRow


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


class SinceType(click.ParamType[float, Any]):
    """``--since``: a duration (``1d``: that long before now) or an ISO date or date and
    time; the moment as epoch seconds."""

    name = "since"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            return time.time() - parse_duration(text)
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is neither a duration (1d, 12h, 30m) nor a date or time "
                "(2024-05-01, 2024-05-01T13:00)",
                param,
                ctx,
            )
        return when.timestamp()  # a date or time without a zone is local time


SINCE = SinceType()


@click.command("list")
@db_option
@tenant_option
@click.option(
    "--status",
    type=click.Choice([s.value for s in ExecutionStatus]),
    help="Only runs with this status.",
)
@click.option("--workflow", "-w", metavar="NAME", help="Only runs of this workflow.")
@click.option(
    "--since",
    type=SINCE,
    metavar="WHEN",
    help="Only runs created since WHEN: a duration ago (1d, 12h, 30m) or a date or time "
    "(2024-05-01, 2024-05-01T13:00, local time unless it names its zone).",
)
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
    tenant: str | None,
    status: str | None,
    workflow: str | None,
    since: float | None,
    limit: int,
    as_json: bool,
) -> None:
    """List recent workflow executions, newest first; --status, --workflow and --since
    narrow the list (`executions list --since 1d --status failed`)."""
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    store = open_existing_store(url, tenant_name)
    try:
        rows = store.list_executions(
            limit=limit,
            status=status,
            workflow_name=workflow,
            since=since,
        )
    finally:
        store.close()
    if as_json:
        echo_json([_row_json(r) for r in rows])
        return
    console = out_console()
    if not rows:
        filters = [f"status {status}" if status else "", f"workflow {workflow}" if workflow else ""]
        which = " with " + " and ".join(f for f in filters if f) if status or workflow else ""
        if since is not None:
            which += f" created since {fmt_time(to_datetime(since))}"
        console.print(
            Text(f"No workflow executions{which} in {where(url, tenant_name)}.", style="dim"),
            soft_wrap=True,
        )
        return
    table = new_table(f"Executions in {where(url, tenant_name)}")
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
            safe_text(row.workflow_name),
            status_text(row.status),
            f"{row.tasks_total - row.tasks_remaining}/{row.tasks_total}",
            fmt_time(started),
            fmt_duration(elapsed(started, finished, row.status)),
        )
    shrink_to_fit(console, table, {"started": 11})  # the date gives way, not the name
    console.print(table)
    if len(rows) == limit:
        console.print(Text(f"(newest {limit}; use --limit to see more)", style="dim"))
