"""``cloacina executions watch``: following one workflow run until it ends, live on a
terminal, as plain lines otherwise."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from cloacina.cli.consoles import fancy, out_console
from cloacina.cli.databases import display_url, open_existing_store
from cloacina.cli.errors import CliError, CliInterrupted, exit_code_for
from cloacina.cli.execution_lookup import SHORT_ID, resolve_execution
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.watch_log import ChangePrinter
from cloacina.cli.watch_stall import StallWatch
from cloacina.cli.watch_view import watch_view
from cloacina.model.status import TERMINAL_EXECUTION, ExecutionStatus
from cloacina.store import Store
from cloacina.store.records import ExecutionRow, TaskRow

Snapshot = tuple[ExecutionRow, list[TaskRow]]


def _poll(store: Store, execution_id: str) -> Snapshot:
    """The run and its tasks, read in that order (so a finished run comes with final tasks)."""
    row = store.get_execution(execution_id)
    if row is None:
        raise CliError(f"workflow execution {execution_id} disappeared from the database")
    return row, store.get_tasks(execution_id)


def _watch_plain(
    console: Console, store: Store, first: Snapshot, interval: float, stall: StallWatch
) -> Snapshot:
    printer = ChangePrinter(console)
    row, tasks = first
    printer.start(row, tasks)
    while True:
        # The events are read after the run's row: a finished run's come with it, all of them.
        printer.update(row, tasks, store.get_events(row.id, after_id=printer.after))
        printer.note(row, stall.hint(row, tasks))
        if row.status in TERMINAL_EXECUTION:
            printer.finish(row, tasks)
            return row, tasks
        time.sleep(interval)
        row, tasks = _poll(store, row.id)


def _watch_live(
    console: Console, store: Store, first: Snapshot, interval: float, stall: StallWatch
) -> Snapshot:
    unicode = fancy(console)
    row, tasks = first
    if row.status not in TERMINAL_EXECUTION:
        with Live(
            watch_view(row, tasks, unicode=unicode, hint=stall.hint(row, tasks)),
            console=console,
            auto_refresh=False,
            transient=True,
        ) as live:
            while row.status not in TERMINAL_EXECUTION:
                time.sleep(interval)
                row, tasks = _poll(store, row.id)
                view = watch_view(row, tasks, unicode=unicode, hint=stall.hint(row, tasks))
                live.update(view, refresh=True)
    console.print(watch_view(row, tasks, unicode=unicode))
    if row.status != ExecutionStatus.COMPLETED:
        console.print(Text(f"details: cloacina executions show {row.id[:SHORT_ID]}", style="dim"))
    return row, tasks


@click.command("watch")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=0.2,
    show_default=True,
    metavar="SECONDS",
    help="How often to re-read the run from the database.",
)
@click.pass_context
def watch_command(
    ctx: click.Context, execution_id: str, db: str | None, tenant: str | None, interval: float
) -> None:
    """Follow one workflow execution live until it ends.

    On a terminal: a progress bar and a table of the tasks, refreshed every --interval.
    Otherwise (a pipe, a file): the run's log, one line per event in the order things
    happened (the history first, then as it goes), and a summary line.
    ID may be a unique prefix of the execution id. Exit code 0 when the run completed,
    1 when it failed or was cancelled; Ctrl-C stops watching (the run carries on). When the
    run is paused, or no live worker holds its running tasks (the worker died) or could
    start its ready ones, a note says so, and watching goes on.
    """
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    store = open_existing_store(url, tenant_name)
    try:
        row = resolve_execution(store, execution_id)
        snapshot = _poll(store, row.id)
        console = out_console()
        start_worker = f"cloacina worker --db {display_url(url)}" + (
            "" if tenant_name == "public" else f" --tenant {tenant_name}"
        )
        stall = StallWatch(store, start_worker)
        try:
            if console.is_terminal:
                row, _tasks = _watch_live(console, store, snapshot, interval, stall)
            else:
                row, _tasks = _watch_plain(console, store, snapshot, interval, stall)
        except KeyboardInterrupt:
            raise CliInterrupted(
                f"stopped watching workflow execution {row.id}; the run itself carries on"
            ) from None
    finally:
        store.close()
    ctx.exit(exit_code_for(row.status))
