"""``cloacina executions list``: recent workflow runs, newest first, narrowed by status,
workflow, time and text, a page at a time."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click
from rich.text import Text

from cloacina.cli.consoles import err_console, out_console
from cloacina.cli.durations import parse_duration
from cloacina.cli.errors import CliError
from cloacina.cli.execution_lookup import SHORT_ID
from cloacina.cli.formatting import elapsed, fmt_duration, fmt_time, iso, safe_text, status_text
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import db_option, tenant_option
from cloacina.cli.remote import open_service, server_options, where_of
from cloacina.cli.render import new_table, shrink_to_fit
from cloacina.errors import RequestError
from cloacina.model.status import ExecutionStatus, WorkflowResult, to_datetime
from cloacina.service.executions import MAX_PAGE


def _row_json(run: WorkflowResult) -> dict[str, Any]:
    duration = elapsed(run.started_at, run.finished_at, run.status)
    return {
        "execution_id": run.execution_id,
        "workflow": run.workflow_name,
        "version": run.workflow_version,
        "package": run.package,
        "tenant": run.tenant,
        "status": str(run.status),
        "error": run.error,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration": None if duration is None else round(duration, 6),
        "tasks_total": run.tasks_total,
        "tasks_done": run.tasks_done,
        "tasks_failed": run.tasks_failed,
    }


class SinceType(click.ParamType[float, Any]):
    """``--since`` and ``--until``: a duration (``1d``: that long before now) or an ISO date
    or date and time; the moment as epoch seconds."""

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
@server_options
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
    "--until",
    type=SINCE,
    metavar="WHEN",
    help="Only runs created before WHEN (the same forms as --since).",
)
@click.option(
    "--search",
    "-q",
    "search",
    metavar="TEXT",
    help="Only runs whose id or error contains TEXT (any case).",
)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1, max=MAX_PAGE),
    default=20,
    show_default=True,
    help=f"How many runs to show (newest first; at most {MAX_PAGE}).",
)
@click.option(
    "--cursor",
    metavar="CURSOR",
    help="Show the page after the one that printed this cursor.",
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
    until: float | None,
    search: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List recent workflow executions, newest first; --status, --workflow, --since,
    --until and --search narrow the list (`executions list --since 1d --status failed`).
    When more runs match than --limit, the last line gives the --cursor of the next page."""
    with open_service(ctx, db, tenant) as runner:
        try:
            page = runner.list_executions_page(
                limit=limit,
                status=status,
                workflow_name=workflow,
                since=since,
                until=until,
                q=search,
                cursor=cursor,
            )
        except RequestError as exc:  # a cursor that is not one
            raise CliError(str(exc)) from None
    rows = page.items
    more = _next_page(page.next_cursor, limit, cursor is not None)
    if as_json:
        echo_json([_row_json(r) for r in rows])
        if more:  # stdout stays one JSON document
            err_console().print(Text(more, style="dim"), soft_wrap=True)
        return
    console = out_console()
    if not rows:
        filters = [
            f"status {status}" if status else "",
            f"workflow {workflow}" if workflow else "",
            f"{search!r} in the id or error" if search else "",
        ]
        which = " with " + " and ".join(f for f in filters if f) if any(filters) else ""
        if since is not None:
            which += f" created since {fmt_time(to_datetime(since))}"
        if until is not None:
            which += f" created before {fmt_time(to_datetime(until))}"
        if cursor:
            which += " after the given cursor"
        console.print(
            Text(f"No workflow executions{which} in {where_of(ctx, db, tenant)}.", style="dim"),
            soft_wrap=True,
        )
        return
    table = new_table(f"Executions in {where_of(ctx, db, tenant)}")
    table.add_column("id", no_wrap=True)
    table.add_column("workflow", overflow="fold", min_width=8)
    table.add_column("status", no_wrap=True)
    table.add_column("tasks", justify="right", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for run in rows:
        table.add_row(
            run.execution_id[:SHORT_ID],
            safe_text(run.workflow_name),
            status_text(run.status),
            f"{run.tasks_done}/{run.tasks_total}",
            fmt_time(run.started_at),
            fmt_duration(elapsed(run.started_at, run.finished_at, run.status)),
        )
    shrink_to_fit(console, table, {"started": 11})  # the date gives way, not the name
    console.print(table)
    if more:
        console.print(Text(more, style="dim"), soft_wrap=True)


def _next_page(cursor: str | None, limit: int, paged: bool) -> str | None:
    """The line that says how to see more runs (None: this page is the last)."""
    if cursor is None:
        return None
    if paged:
        return f"(next page: --cursor {cursor})"
    return f"(newest {limit}; use --limit to see more, or the next page: --cursor {cursor})"
