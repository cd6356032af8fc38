"""``cloacina backfill WORKFLOW --from --to`` (with a live progress bar) and ``cloacina
backfills list|show|pause|resume|cancel``: a range of a workflow's scheduled times run as one
object (``runner.backfill``, :mod:`cloacina.service.backfills`), on a database or a server."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from cloacina.cli.actor import acts_locally
from cloacina.cli.consoles import err_console, fancy, out_console
from cloacina.cli.errors import CliError, CliInterrupted, print_error
from cloacina.cli.formatting import fmt_time, safe_text, status_text
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import (
    db_option,
    resolve_db,
    resolve_settings,
    resolve_tenant,
    settings_options,
    tenant_option,
)
from cloacina.cli.remote import open_client, open_service, server_options
from cloacina.cli.render import new_table
from cloacina.cli.run import import_modules, load_context
from cloacina.errors import (
    InvalidStateError,
    NotFoundError,
    RequestError,
    WorkflowNotFoundError,
)
from cloacina.runner import DefaultRunner
from cloacina.service.backfills import MAX_BACKFILL_TIMES, Backfill

if TYPE_CHECKING:
    from cloacina.cli.remote import Service

#: Seconds between two looks at a followed backfill.
FOLLOW_EVERY = 0.2
SHORT = 8
#: From this many columns, ``backfills list`` shows the range in two columns and the
#: running and failed counts.
WIDE = 120


def _local(value: datetime, timezone: str) -> str:
    """A time of a backfill's range as a wall time of its zone (the cron's), to the minute."""
    try:
        value = value.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        pass
    return value.strftime("%Y-%m-%d %H:%M")


def _summary(b: Backfill) -> str:
    return (
        f"{b.completed} completed, {b.failed} failed, {b.cancelled} cancelled, "
        f"{b.running} running, {b.skipped} skipped (had a run) of {b.total} times"
    )


def _describe(b: Backfill) -> str:
    return f"{b.workflow}: {b.running} running, {b.failed} failed, {b.skipped} skipped"


def follow_backfill(service: Service, backfill_id: str, *, live: bool) -> Backfill:
    """Show a backfill's progress until it has finished (a live bar on a terminal)."""
    current = service.get_backfill(backfill_id)
    if not live:
        while not current.finished:
            time.sleep(FOLLOW_EVERY)
            current = service.get_backfill(backfill_id)
        return current
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console(), transient=False) as progress:
        bar = progress.add_task(_describe(current), total=current.total, completed=current.done)
        while not current.finished:
            time.sleep(FOLLOW_EVERY)
            current = service.get_backfill(backfill_id)
            progress.update(bar, completed=current.done, description=_describe(current))
        progress.update(bar, completed=current.done, description=_describe(current))
    return current


def _print_started(b: Backfill, detached: bool) -> None:
    console = out_console()
    console.print(
        Text.assemble(
            "Backfill ",
            (b.id, "bold"),
            f" of {b.workflow}: {b.total} time(s) of {b.cron!r} ({b.timezone}) from ",
            fmt_time(b.start),
            " to ",
            fmt_time(b.end),
            f", at most {b.max_parallel} at once",
            ", only those without a run" if b.only_missing else ", every one",
            ".",
        ),
        soft_wrap=True,
    )
    if detached:
        console.print(
            Text(
                f"Workers make its runs. Follow it with: cloacina backfills show {b.id[:SHORT]}",
                style="dim",
            ),
            soft_wrap=True,
        )


def _print_end(ctx: click.Context, b: Backfill) -> None:
    console = out_console()
    line = Text.assemble(
        "Backfill ", (b.id[:SHORT], "bold"), " ", status_text(b.status), ": ", _summary(b), "."
    )
    console.print(line, soft_wrap=True)
    ctx.exit(0 if b.status == "completed" else 1)


# ---- cloacina backfill -----------------------------------------------------------------------
@click.command("backfill")
@click.argument("workflow")
@click.option(
    "--from",
    "start",
    required=True,
    metavar="TIME",
    help="The first time (ISO 8601: 2026-01-01 or 2026-01-01T06:00+01:00; without an offset "
    "it is read in --timezone).",
)
@click.option("--to", "end", required=True, metavar="TIME", help="The last time (included).")
@click.option(
    "--cron",
    default=None,
    metavar="EXPR",
    help="Which times, a cron expression (5 fields, 6 with seconds first, or @hourly...) "
    "[default: the workflow's declared schedule, if it has exactly one].",
)
@click.option(
    "--timezone", default="UTC", show_default=True, metavar="ZONE", help="The cron's IANA zone."
)
@click.option(
    "--all",
    "all_times",
    is_flag=True,
    help="Run every time, even those that have a run of the workflow already [default: only "
    "the missing ones].",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    metavar="N",
    help="At most N of its runs unfinished at once.",
)
@click.option("--context", "context", metavar="JSON", help="Each run's input context (JSON).")
@click.option(
    "--context-file",
    "context_file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Read the input context from FILE ('-' for stdin).",
)
@click.option(
    "--force", is_flag=True, help=f"Allow a range of more than {MAX_BACKFILL_TIMES:,} times."
)
@click.option(
    "--detach",
    is_flag=True,
    help="Start it and return at once (workers make its runs) instead of following it.",
)
@click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    metavar="MOD",
    help="Module that defines the workflow (its runs then execute in this process while it "
    "follows). Repeatable. A registered package's workflow needs none.",
)
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print the backfill as JSON at the end.")
@settings_options
@click.pass_context
@acts_locally
def backfill_command(
    ctx: click.Context,
    workflow: str,
    start: str,
    end: str,
    cron: str | None,
    timezone: str,
    all_times: bool,
    max_parallel: int,
    context: str | None,
    context_file: str | None,
    force: bool,
    detach: bool,
    modules: tuple[str, ...],
    db: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Run WORKFLOW for every time of its schedule (or --cron) from --from to --to, at most
    --max-parallel at once, below fresh runs in priority (a backfill never delays them).
    Only the times without a run of WORKFLOW are run, unless --all.

    It follows the backfill with a progress bar until every run has ended (this process
    executes runs too), unless --detach. Ctrl-C stops following; the backfill goes on
    (`cloacina backfills cancel ID` stops it). Exit code 0 when every run completed, 1 when
    one failed or the backfill was cancelled, 2 for bad input (nothing is stored then).

    \b
    cloacina backfill nightly --from 2026-01-01 --to 2026-01-31 -m flows
    cloacina backfill etl --from 2026-03-01T00:00 --to 2026-03-02T00:00 --cron @hourly --all
    """
    input_context = load_context(context, context_file)
    args: dict[str, Any] = {
        "cron": cron,
        "only_missing": not all_times,
        "max_parallel": max_parallel,
        "context": input_context,
        "timezone": timezone,
        "force": force,
    }
    client = open_client(ctx, tenant)
    if client is not None:
        if modules:
            client.close()
            raise CliError(
                "--module defines workflows in this process; with --server the server's "
                "workflows are backfilled"
            )
        with client:
            _start_and_follow(ctx, client, workflow, start, end, args, detach, as_json)
        return
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    import_modules(modules)
    runner = DefaultRunner(
        url, tenant=tenant_name, settings=resolve_settings(ctx), execute_tasks=not detach
    )
    try:
        _start_and_follow(ctx, runner, workflow, start, end, args, detach, as_json)
    finally:
        runner.shutdown()


def _start_and_follow(
    ctx: click.Context,
    service: Service,
    workflow: str,
    start: str,
    end: str,
    args: dict[str, Any],
    detach: bool,
    as_json: bool,
) -> None:
    try:
        backfill_id = service.backfill(workflow, start, end, **args)
    except (RequestError, WorkflowNotFoundError) as exc:  # bad input: nothing was stored
        raise CliError(str(exc)) from None
    started = service.get_backfill(backfill_id)
    if detach:
        if as_json:
            echo_json(started.to_dict())
        else:
            _print_started(started, detached=True)
        return
    if not as_json:
        _print_started(started, detached=False)
    try:
        done = follow_backfill(service, backfill_id, live=not as_json and fancy(err_console()))
    except KeyboardInterrupt:
        raise CliInterrupted(
            f"stopped following backfill {backfill_id}; it goes on (see `cloacina backfills "
            f"show {backfill_id[:SHORT]}`, stop it with `cloacina backfills cancel "
            f"{backfill_id[:SHORT]}`)"
        ) from None
    if as_json:
        echo_json(done.to_dict())
        ctx.exit(0 if done.status == "completed" else 1)
    _print_end(ctx, done)


# ---- cloacina backfills ----------------------------------------------------------------------
@click.group("backfills")
def backfills_group() -> None:
    """See and control backfills (started with `cloacina backfill`)."""


def _open(ctx: click.Context, db: str | None, tenant: str | None, *, write: bool) -> Service:
    return open_service(ctx, db, tenant, read_only=not write)


@backfills_group.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True, metavar="N")
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(
    ctx: click.Context, limit: int, db: str | None, tenant: str | None, as_json: bool
) -> None:
    """The backfills, newest first, with their progress."""
    with _open(ctx, db, tenant, write=False) as service:
        items = service.list_backfills(limit)
    if as_json:
        echo_json({"items": [b.to_dict() for b in items]})
        return
    console = out_console()
    if not items:
        console.print("No backfills.")
        return
    wide = console.width >= WIDE
    table = new_table("Backfills")
    table.add_column("id", no_wrap=True)
    table.add_column("workflow", overflow="fold", min_width=8)
    table.add_column("times", overflow="fold", min_width=9)
    if wide:
        table.add_column("from", no_wrap=True)
        table.add_column("to", no_wrap=True)
    else:  # the range on two lines: an 80-column terminal keeps every column readable
        table.add_column("range", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("done", justify="right", no_wrap=True)
    if wide:
        table.add_column("running", justify="right", no_wrap=True)
        table.add_column("failed", justify="right", no_wrap=True)
    for b in items:
        start, end = _local(b.start, b.timezone), _local(b.end, b.timezone)
        cells: list[Text | str] = [b.id[:SHORT], safe_text(b.workflow)]
        cells.append(safe_text(f"{b.cron} ({b.timezone})"))
        cells.extend([start, end] if wide else [f"{start}\n{end}"])
        cells.extend([status_text(b.status), f"{b.done}/{b.total}"])
        if wide:
            cells.extend([str(b.running), str(b.failed)])
        table.add_row(*cells)
    console.print(table)


@backfills_group.command("show")
@click.argument("backfill_id", metavar="ID")
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show_command(
    ctx: click.Context, backfill_id: str, db: str | None, tenant: str | None, as_json: bool
) -> None:
    """One backfill and its progress (ID may be a unique prefix)."""
    with _open(ctx, db, tenant, write=False) as service:
        try:
            b = service.get_backfill(backfill_id)
        except (NotFoundError, RequestError) as exc:
            raise CliError(str(exc)) from None
    if as_json:
        echo_json(b.to_dict())
        return
    table = new_table(f"Backfill {b.id}")
    table.add_column("Field")
    table.add_column("Value")
    rows: list[tuple[str, Text | str]] = [
        ("workflow", safe_text(b.workflow)),
        ("times", safe_text(f"{b.cron} ({b.timezone})")),
        ("range", f"{_local(b.start, b.timezone)} .. {_local(b.end, b.timezone)} ({b.timezone})"),
        ("status", status_text(b.status)),
        ("progress", f"{b.done}/{b.total}"),
        ("runs made", str(b.created)),
        ("completed", str(b.completed)),
        ("failed", str(b.failed)),
        ("cancelled", str(b.cancelled)),
        ("running", str(b.running)),
        ("skipped (had a run)", str(b.skipped)),
        ("only missing", "yes" if b.only_missing else "no (--all)"),
        ("max parallel", str(b.max_parallel)),
        ("next time", _local(b.next_time, b.timezone) if b.next_time else "-"),
        ("created", fmt_time(b.created_at)),
        ("finished", fmt_time(b.finished_at) if b.finished_at else "-"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    out_console().print(table)


def _change(
    ctx: click.Context, db: str | None, tenant: str | None, backfill_id: str, action: str
) -> None:
    with _open(ctx, db, tenant, write=True) as service:
        try:
            found = service.get_backfill(backfill_id)
            result = getattr(service, f"{action}_backfill")(found.id)
        except (NotFoundError, RequestError) as exc:
            raise CliError(str(exc)) from None
        except InvalidStateError as exc:
            print_error(str(exc))
            ctx.exit(1)
    done = {"pause": "Paused", "resume": "Resumed", "cancel": "Cancelled"}[action]
    extra = f"; {result} unfinished run(s) cancelled" if action == "cancel" else ""
    out_console().print(Text(f"{done} backfill {found.id} ({found.workflow}){extra}."))


@backfills_group.command("pause")
@click.argument("backfill_id", metavar="ID")
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def pause_command(ctx: click.Context, backfill_id: str, db: str | None, tenant: str | None) -> None:
    """Make no new runs for a backfill until it is resumed (its runs go on)."""
    _change(ctx, db, tenant, backfill_id, "pause")


@backfills_group.command("resume")
@click.argument("backfill_id", metavar="ID")
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def resume_command(
    ctx: click.Context, backfill_id: str, db: str | None, tenant: str | None
) -> None:
    """Go on making a paused backfill's runs (workers make them)."""
    _change(ctx, db, tenant, backfill_id, "resume")


@backfills_group.command("cancel")
@click.argument("backfill_id", metavar="ID")
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def cancel_command(
    ctx: click.Context, backfill_id: str, db: str | None, tenant: str | None
) -> None:
    """Stop a backfill for good and cancel its unfinished runs."""
    _change(ctx, db, tenant, backfill_id, "cancel")
