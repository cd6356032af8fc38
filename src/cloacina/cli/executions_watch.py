"""``cloacina executions watch``: following one workflow run until it ends, live on a
terminal, as plain lines otherwise."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from cloacina.cli.consoles import fancy, out_console
from cloacina.cli.databases import display_url
from cloacina.cli.errors import CliError, CliInterrupted, exit_code_for
from cloacina.cli.execution_lookup import SHORT_ID, resolve_execution
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.remote import open_service, server_options
from cloacina.cli.watch_log import ChangePrinter
from cloacina.cli.watch_stall import StallWatch
from cloacina.cli.watch_view import watch_view
from cloacina.errors import ExecutionNotFoundError
from cloacina.model.status import TERMINAL_EXECUTION, ExecutionStatus, WorkflowResult
from cloacina.service.types import ExecutionEvent

if TYPE_CHECKING:
    from cloacina.cli.remote import Service


def _poll(runner: Service, execution_id: str) -> WorkflowResult:
    """The run and its tasks, read in that order (so a finished run comes with final tasks)."""
    try:
        return runner.get_execution(execution_id)
    except ExecutionNotFoundError:
        raise CliError(f"workflow execution {execution_id} disappeared from the database") from None


def _events_after(runner: Service, execution_id: str, after: int) -> list[ExecutionEvent]:
    try:
        return list(runner.get_events(execution_id, after=after))
    except ExecutionNotFoundError:
        raise CliError(f"workflow execution {execution_id} disappeared from the database") from None


def _watch_plain(
    console: Console,
    runner: Service,
    first: WorkflowResult,
    interval: float,
    stall: StallWatch,
) -> WorkflowResult:
    printer = ChangePrinter(console)
    run = first
    printer.start(run)
    while True:
        # The events are read after the run's row: a finished run's come with it, all of them.
        printer.update(run, _events_after(runner, run.execution_id, printer.after))
        printer.note(run, stall.hint(run))
        if run.status in TERMINAL_EXECUTION:
            printer.finish(run)
            return run
        time.sleep(interval)
        run = _poll(runner, run.execution_id)


def _watch_live(
    console: Console,
    runner: Service,
    first: WorkflowResult,
    interval: float,
    stall: StallWatch,
) -> WorkflowResult:
    unicode = fancy(console)
    run = first
    if run.status not in TERMINAL_EXECUTION:
        with Live(
            watch_view(run, unicode=unicode, hint=stall.hint(run)),
            console=console,
            auto_refresh=False,
            transient=True,
        ) as live:
            while run.status not in TERMINAL_EXECUTION:
                time.sleep(interval)
                run = _poll(runner, run.execution_id)
                live.update(watch_view(run, unicode=unicode, hint=stall.hint(run)), refresh=True)
    console.print(watch_view(run, unicode=unicode))
    if run.status != ExecutionStatus.COMPLETED:
        console.print(
            Text(f"details: cloacina executions show {run.execution_id[:SHORT_ID]}", style="dim")
        )
    return run


@click.command("watch")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@server_options
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
    with open_service(ctx, db, tenant) as runner:
        found = resolve_execution(runner, execution_id)
        snapshot = _poll(runner, found.execution_id)
        console = out_console()
        start_worker = f"cloacina worker --db {display_url(url)}" + (
            "" if tenant_name == "public" else f" --tenant {tenant_name}"
        )
        stall = StallWatch(runner, start_worker)
        try:
            if console.is_terminal:
                run = _watch_live(console, runner, snapshot, interval, stall)
            else:
                run = _watch_plain(console, runner, snapshot, interval, stall)
        except KeyboardInterrupt:
            raise CliInterrupted(
                f"stopped watching workflow execution {found.execution_id}; "
                "the run itself carries on"
            ) from None
    ctx.exit(exit_code_for(run.status))
