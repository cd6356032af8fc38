"""``cloacina triggers list|pause|resume``: the poll functions that start runs, on the
database (``--db``) or through a server (``--server``).

Triggers are declared in code (``@trigger``) and recorded in the database by the workers
that know them; these commands show them and switch them off and on, for every worker.
"""

from __future__ import annotations

import click
from rich.text import Text

from cloacina.cli.actor import acts_locally
from cloacina.cli.consoles import out_console
from cloacina.cli.formatting import fmt_duration, fmt_time, safe_text
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import db_option, tenant_option
from cloacina.cli.remote import open_service, server_options
from cloacina.cli.render import new_table
from cloacina.service.triggers import TriggerInfo


def last_line(text: str | None) -> str:
    """The last line of a stored traceback: the exception and its message."""
    if not text:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@click.group("triggers")
def triggers_group() -> None:
    """Poll functions that start runs (@trigger(workflow=..., poll_interval=...)).

    \b
    cloacina triggers list
    cloacina triggers pause NAME
    cloacina triggers resume NAME

    Workers record the triggers their code declares and poll them; a trigger whose poll
    raises waits longer after each failure (see FAILURES and the last error in `list`).
    """


@triggers_group.command("list", short_help="List the triggers and how their polls went.")
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, db: str | None, tenant: str | None, as_json: bool) -> None:
    """List the triggers by name: the workflow each starts, its interval, whether it is
    paused, when it was last polled and fired, when it is polled next, its failures."""
    with open_service(ctx, db, tenant) as service:
        triggers = service.list_triggers()
    if as_json:
        echo_json([t.to_dict() for t in triggers])
        return
    console = out_console()
    if not triggers:
        console.print(
            "no triggers: declare one with @trigger(workflow=..., poll_interval=...) in the "
            "code of a worker"
        )
        return
    table = new_table("Triggers")
    for column in ("name", "workflow", "every", "state", "last polled", "last fired", "next"):
        table.add_column(column, overflow="fold")
    table.add_column("failures", justify="right")
    table.add_column("last error", overflow="fold")
    for t in triggers:
        table.add_row(
            safe_text(t.name),
            safe_text(t.workflow + (f" ({t.package})" if t.package else "")),
            fmt_duration(t.poll_interval),
            _state(t),
            fmt_time(t.last_polled_at),
            fmt_time(t.last_fired_at),
            fmt_time(t.next_poll_at) if t.enabled else "-",
            Text(str(t.failures), style="red" if t.failures else ""),
            safe_text(last_line(t.last_error), "red"),
        )
    console.print(table)


def _state(t: TriggerInfo) -> Text:
    if not t.enabled:
        return Text("paused", style="yellow")
    if t.failures:
        return Text("failing", style="red")
    return Text("active", style="green")


@triggers_group.command("pause", short_help="Stop polling a trigger (on every worker).")
@click.argument("name")
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def pause_command(ctx: click.Context, name: str, db: str | None, tenant: str | None) -> None:
    """Stop polling trigger NAME on every worker until it is resumed."""
    with open_service(ctx, db, tenant, read_only=False) as service:
        service.pause_trigger(name)
    out_console().print(Text.assemble(("Paused trigger ", "bold yellow"), (name, "bold")))


@triggers_group.command("resume", short_help="Poll a paused trigger again, at once.")
@click.argument("name")
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def resume_command(ctx: click.Context, name: str, db: str | None, tenant: str | None) -> None:
    """Poll trigger NAME again: it is due at once, its failures forgotten."""
    with open_service(ctx, db, tenant, read_only=False) as service:
        service.resume_trigger(name)
    out_console().print(Text.assemble(("Resumed trigger ", "bold green"), (name, "bold")))
