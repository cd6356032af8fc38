"""``cloacina schedules add|list|show|pause|resume|update|remove|history``: cron schedules of
workflows, on the database (``--db``) or through a server (``--server``).

Schedules are fired by the processes that execute tasks (``cloacina worker``, ``cloacina
serve``); these commands manage them. Times are shown in the schedule's own zone and in the
viewer's (this machine's, or ``--zone``).
"""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

import click
from rich.text import Text

from cloacina.cli.actor import acts_locally
from cloacina.cli.consoles import out_console
from cloacina.cli.errors import CliError
from cloacina.cli.formatting import safe_text
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.remote import open_client, open_service, server_options
from cloacina.cli.render import new_table
from cloacina.service.schedules import UNSET, Schedule, ScheduleFire

CATCHUP = click.Choice(["skip", "latest", "all"])


def _viewer_zone(name: str | None) -> tzinfo | None:
    """The viewer's zone: ``--zone``, else this machine's (None)."""
    if name is None:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CliError(f"--zone {name!r} is not an IANA time zone (e.g. Europe/Berlin)") from None


def _fmt(value: datetime | None, zone: tzinfo | None) -> str:
    """A time in ``zone`` (None: this machine's) with its offset and zone abbreviation."""
    if value is None:
        return "-"
    local = value.astimezone(zone)
    return f"{local.strftime('%Y-%m-%d %H:%M:%S')} {local.strftime('%Z') or local.strftime('%z')}"


def _in_schedule_zone(s: Schedule, value: datetime | None) -> str:
    return _fmt(value, zoneinfo.ZoneInfo(s.timezone))


def _context(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--context is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CliError('--context must be a JSON object, e.g. {"region": "eu"}')
    return data


def _import(modules: Sequence[str]) -> None:
    if modules:
        from cloacina.cli.run import import_modules

        import_modules(modules)


def _service_that_creates(ctx: click.Context, db: str | None, tenant: str | None) -> Any:
    """The server's client, else a runner (executing nothing) on the database, made if it
    is not there yet: a schedule may come before the first run and the first worker."""
    client = open_client(ctx, tenant)
    if client is not None:
        return client
    from cloacina.runner import DefaultRunner

    return DefaultRunner(
        resolve_db(ctx, db), tenant=resolve_tenant(ctx, tenant), execute_tasks=False
    )


def _state(s: Schedule) -> Text:
    if not s.enabled:
        return Text("paused", style="yellow")
    if s.next_fire_at is None:
        return Text("ended", style="dim")
    return Text("active", style="green")


@click.group("schedules")
def schedules_group() -> None:
    """Cron schedules of workflows: fired by every worker, exactly once per time.

    \b
    cloacina schedules add nightly "0 2 * * *" --timezone Europe/Berlin
    cloacina schedules list
    cloacina schedules show nightly:1a2b3c4d
    cloacina schedules pause ID / resume ID / remove ID
    cloacina schedules update ID --cron "30 2 * * *"
    cloacina schedules history ID

    Expressions have 5 fields (minute hour day month weekday), 6 with seconds first, or an
    alias (@hourly, @daily, @weekly, @monthly, @yearly). --catchup says what happens to the
    times missed while no worker ran or the schedule was paused: skip (none), latest (the
    newest), all (each, at most --max-catchup). A schedule fires first at its first time
    after it was added; an edit of its expression, zone or bounds applies from then on.
    """


@schedules_group.command("add", short_help="Add a cron schedule of a workflow.")
@click.argument("workflow")
@click.argument("cron")
@click.option("--timezone", "-z", default="UTC", show_default=True, help="An IANA zone.")
@click.option("--context", default=None, metavar="JSON", help="Each run's context (an object).")
@click.option("--catchup", type=CATCHUP, default="skip", show_default=True)
@click.option("--max-catchup", type=int, default=100, show_default=True)
@click.option("--start", default=None, metavar="TIME", help="No earlier time fires (ISO 8601).")
@click.option("--end", default=None, metavar="TIME", help="No later time fires (ISO 8601).")
@click.option("--name", default=None, help="A unique name [default: <workflow>:<id>].")
@click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    metavar="MOD",
    help="Import this module first (defines WORKFLOW if it is not a registered package's).",
)
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
@click.pass_context
@acts_locally
def add_command(
    ctx: click.Context,
    workflow: str,
    cron: str,
    timezone: str,
    context: str | None,
    catchup: str,
    max_catchup: int,
    start: str | None,
    end: str | None,
    name: str | None,
    modules: tuple[str, ...],
    db: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Add a schedule that runs WORKFLOW at the times of CRON (in --timezone)."""
    _import(modules)
    data = _context(context)
    with _service_that_creates(ctx, db, tenant) as service:
        sid = service.add_schedule(
            workflow,
            cron,
            timezone=timezone,
            context=data,
            catchup=catchup,
            max_catchup=max_catchup,
            start=start,
            end=end,
            name=name,
        )
        added = service.get_schedule(sid)
    if as_json:
        echo_json(added.to_dict())
        return
    out_console().print(
        Text.assemble(
            ("Added schedule ", "bold green"),
            (added.name, "bold"),
            f" ({added.id}): {added.cron} in {added.timezone}, next ",
            _in_schedule_zone(added, added.next_fire_at),
        )
    )


@schedules_group.command("list", short_help="List the schedules and their next times.")
@click.option("--workflow", default=None, metavar="NAME", help="Only this workflow's.")
@click.option("--zone", default=None, metavar="TZ", help="Your zone [default: this machine's].")
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(
    ctx: click.Context,
    workflow: str | None,
    zone: str | None,
    db: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """List the schedules by name: workflow, expression and zone, state, the next fire time
    in the schedule's zone and in yours, and the last time that fired."""
    viewer = _viewer_zone(zone)
    with open_service(ctx, db, tenant) as service:
        schedules = service.list_schedules(workflow)
    if as_json:
        echo_json([s.to_dict() for s in schedules])
        return
    console = out_console()
    if not schedules:
        console.print(
            "no schedules: add one with `cloacina schedules add WORKFLOW CRON`, or declare one "
            "with @workflow(..., schedules=[cron(...)])"
        )
        return
    table = new_table("Schedules")
    for column in ("name", "id", "workflow", "cron", "zone", "state"):
        table.add_column(column, overflow="fold")
    table.add_column("next (schedule's zone)", overflow="fold")
    table.add_column("next (yours)", overflow="fold")
    table.add_column("last fired", overflow="fold")
    table.add_column("source", overflow="fold")
    for s in schedules:
        table.add_row(
            safe_text(s.name),
            s.id[:8],
            safe_text(s.workflow),
            safe_text(s.cron),
            s.timezone,
            _state(s),
            _in_schedule_zone(s, s.next_fire_at),
            _fmt(s.next_fire_at, viewer),
            _fmt(s.last_fire_at, viewer),
            s.source + (f" ({s.package})" if s.package else ""),
        )
    console.print(table)


@schedules_group.command("show", short_help="Show a schedule, its next times and last fires.")
@click.argument("schedule")
@click.option("--next", "count", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--zone", default=None, metavar="TZ", help="Your zone [default: this machine's].")
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show_command(
    ctx: click.Context,
    schedule: str,
    count: int,
    zone: str | None,
    db: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Show SCHEDULE (an id, a short id or a name): its settings, its next times in its
    zone and yours, and its last fires."""
    viewer = _viewer_zone(zone)
    with open_service(ctx, db, tenant) as service:
        found = service.get_schedule(schedule)
        fires = service.schedule_history(found.id, 5)
    upcoming = found.next_times(count)
    if as_json:
        doc = found.to_dict()
        doc["next_times"] = [t.isoformat() for t in upcoming]
        doc["history"] = [f.to_dict() for f in fires]
        echo_json(doc)
        return
    console = out_console()
    console.print(Text.assemble(("Schedule ", "bold"), (found.name, "bold cyan"), f"  {found.id}"))
    rows = [
        ("workflow", found.workflow),
        ("cron", f"{found.cron} ({found.timezone})"),
        ("state", _state(found).plain),
        ("catch-up", f"{found.catchup} (at most {found.max_catchup})"),
        (
            "bounds",
            f"{_in_schedule_zone(found, found.start)} .. {_in_schedule_zone(found, found.end)}",
        ),
        ("source", found.source + (f" (package {found.package})" if found.package else "")),
        ("context", json.dumps(found.context, sort_keys=True)),
        ("last fired", _in_schedule_zone(found, found.last_fire_at)),
    ]
    for label, value in rows:
        console.print(Text.assemble((f"  {label:<10} ", "dim"), safe_text(value)))
    table = new_table("Next times")
    table.add_column(f"in {found.timezone}")
    table.add_column("yours")
    for t in upcoming:
        table.add_row(_in_schedule_zone(found, t), _fmt(t, viewer))
    console.print(table)
    if fires:
        _print_fires(found, fires, viewer, "Last fires")


def _print_fires(
    s: Schedule, fires: Sequence[ScheduleFire], viewer: tzinfo | None, title: str
) -> None:
    table = new_table(title)
    for column in ("scheduled for", "fired at", "late", "execution", "worker"):
        table.add_column(column, overflow="fold")
    for f in fires:
        late = (f.fired_at - f.scheduled_for).total_seconds()
        table.add_row(
            _in_schedule_zone(s, f.scheduled_for),
            _fmt(f.fired_at, viewer),
            f"{late:.3f}s",
            f.execution_id or "-",
            safe_text(f.worker_id or "-"),
        )
    out_console().print(table)


@schedules_group.command("history", short_help="The times a schedule fired, newest first.")
@click.argument("schedule")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--zone", default=None, metavar="TZ", help="Your zone [default: this machine's].")
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def history_command(
    ctx: click.Context,
    schedule: str,
    limit: int,
    zone: str | None,
    db: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """The fires of SCHEDULE: each scheduled time, when it fired and the run it started."""
    viewer = _viewer_zone(zone)
    with open_service(ctx, db, tenant) as service:
        found = service.get_schedule(schedule)
        fires = service.schedule_history(found.id, limit)
    if as_json:
        echo_json([f.to_dict() for f in fires])
        return
    if not fires:
        out_console().print(f"schedule {found.name} has not fired yet")
        return
    _print_fires(found, fires, viewer, f"Fires of {found.name}")


def _change(
    ctx: click.Context, verb: str, schedule: str, db: str | None, tenant: str | None
) -> None:
    with open_service(ctx, db, tenant, read_only=False) as service:
        found = service.get_schedule(schedule)
        getattr(service, f"{verb}_schedule")(found.id)
    style = {"pause": "bold yellow", "resume": "bold green", "remove": "bold red"}[verb]
    label = {"pause": "Paused", "resume": "Resumed", "remove": "Removed"}[verb]
    out_console().print(Text.assemble((f"{label} schedule ", style), (found.name, "bold")))


@schedules_group.command("pause", short_help="Stop firing a schedule (on every worker).")
@click.argument("schedule")
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def pause_command(ctx: click.Context, schedule: str, db: str | None, tenant: str | None) -> None:
    """Stop firing SCHEDULE until it is resumed."""
    _change(ctx, "pause", schedule, db, tenant)


@schedules_group.command("resume", short_help="Fire a paused schedule again.")
@click.argument("schedule")
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def resume_command(ctx: click.Context, schedule: str, db: str | None, tenant: str | None) -> None:
    """Fire SCHEDULE again; the times it missed while paused go by its catch-up policy."""
    _change(ctx, "resume", schedule, db, tenant)


@schedules_group.command("remove", short_help="Delete a schedule and its history.")
@click.argument("schedule")
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def remove_command(ctx: click.Context, schedule: str, db: str | None, tenant: str | None) -> None:
    """Delete SCHEDULE and its history (the runs it started stay)."""
    _change(ctx, "remove", schedule, db, tenant)


@schedules_group.command("update", short_help="Change a schedule.")
@click.argument("schedule")
@click.option("--cron", default=None, help="A new expression (applies from now).")
@click.option("--timezone", "-z", default=None, help="A new zone (applies from now).")
@click.option("--context", default=None, metavar="JSON", help="A new context (an object).")
@click.option("--catchup", type=CATCHUP, default=None)
@click.option("--max-catchup", type=int, default=None)
@click.option("--start", default=None, metavar="TIME", help="A new first time (ISO 8601).")
@click.option("--end", default=None, metavar="TIME", help="A new last time (ISO 8601).")
@click.option("--no-start", is_flag=True, help="Remove the start bound.")
@click.option("--no-end", is_flag=True, help="Remove the end bound.")
@click.option("--name", default=None, help="A new name.")
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
@click.pass_context
@acts_locally
def update_command(
    ctx: click.Context,
    schedule: str,
    cron: str | None,
    timezone: str | None,
    context: str | None,
    catchup: str | None,
    max_catchup: int | None,
    start: str | None,
    end: str | None,
    no_start: bool,
    no_end: bool,
    name: str | None,
    db: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Change SCHEDULE: what is given changes, the rest stays. A new expression, zone or
    bound applies from now: no time from before the change fires."""
    if start is not None and no_start:
        raise CliError("give --start or --no-start, not both")
    if end is not None and no_end:
        raise CliError("give --end or --no-end, not both")
    data = _context(context)
    with open_service(ctx, db, tenant, read_only=False) as service:
        found = service.get_schedule(schedule)
        updated = service.update_schedule(
            found.id,
            cron=cron,
            timezone=timezone,
            context=data,
            catchup=catchup,
            max_catchup=max_catchup,
            start=None if no_start else (start if start is not None else UNSET),
            end=None if no_end else (end if end is not None else UNSET),
            name=name,
        )
    if as_json:
        echo_json(updated.to_dict())
        return
    out_console().print(
        Text.assemble(
            ("Updated schedule ", "bold green"),
            (updated.name, "bold"),
            f": {updated.cron} in {updated.timezone}, next ",
            _in_schedule_zone(updated, updated.next_fire_at),
        )
    )


__all__ = ["schedules_group"]
