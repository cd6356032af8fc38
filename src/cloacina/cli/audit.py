"""``cloacina audit list|export``: the audit log (every change made through a face: who, when,
what, where from, and how it went). Read-only: no face can change or delete a row."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click
from rich.text import Text

from cloacina.cli.api_keys import open_control
from cloacina.cli.consoles import out_console
from cloacina.cli.errors import CliError
from cloacina.cli.formatting import fmt_time
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import db_option
from cloacina.cli.remote import server_options
from cloacina.cli.render import new_table
from cloacina.errors import RequestError
from cloacina.service.audit import MAX_PAGE
from cloacina.settings import parse_duration


class SinceType(click.ParamType[float, Any]):
    """A point in time: an age (``2h``: two hours ago) or an ISO 8601 time (UTC unless it
    says otherwise), as epoch seconds."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        text = str(value).strip()
        try:
            return time.time() - parse_duration(text)
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(
                f"{text!r} is neither an age (30m, 2h, 7d) nor an ISO 8601 time "
                "(2026-01-31T12:00:00Z)",
                param,
                ctx,
            )
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()


SINCE = SinceType()


@click.group("audit")
def audit_group() -> None:
    """Read the audit log: every change made through the CLI or the HTTP API.

    \b
    cloacina audit list --since 1d --action 'run.*'
    cloacina audit export --format csv > audit.csv
    """


def _filters(func: Any) -> Any:
    func = click.option(
        "--outcome",
        type=click.Choice(["ok", "failed"]),
        default=None,
        help="Only changes that succeeded (ok) or failed (any error).",
    )(func)
    func = click.option(
        "--actor",
        default=None,
        metavar="TEXT",
        help="Only entries whose actor contains this (a key's name or id, local:USER).",
    )(func)
    func = click.option(
        "--action",
        default=None,
        metavar="ACTION",
        help="Only this action (run.cancel), or a family ending in * (run.*).",
    )(func)
    func = click.option(
        "--until", type=SINCE, default=None, metavar="TIME", help="Only entries before this."
    )(func)
    return click.option(
        "--since",
        type=SINCE,
        default=None,
        metavar="TIME",
        help="Only entries from this time: an age (2h, 7d) or an ISO 8601 time.",
    )(func)


@audit_group.command("list", short_help="List audit entries, newest first.")
@db_option
@server_options
@_filters
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE),
    default=50,
    show_default=True,
    help="At most this many entries.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(
    ctx: click.Context,
    db: str | None,
    since: float | None,
    until: float | None,
    action: str | None,
    actor: str | None,
    outcome: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the newest entries of the audit log: when, who, the tenant, the action, its
    target and its outcome (ok, or the error)."""
    with open_control(ctx, db, read_only=True) as runner:
        try:
            page = runner.list_audit(
                since=since,
                until=until,
                action=action,
                limit=limit,
                actor=actor,
                outcome=outcome,
            )
        except RequestError as exc:
            raise CliError(str(exc)) from None
    if as_json:
        echo_json({"items": [e.to_dict() for e in page.items], "next_cursor": page.next_cursor})
        return
    console = out_console()
    if not page.items:
        console.print(
            "no audit entries" + (" match" if since or until or action or actor or outcome else "")
        )
        return
    table = new_table("Audit log")
    for column in ("at", "actor", "tenant", "action", "target", "outcome"):
        table.add_column(column, overflow="fold", no_wrap=column == "at")
    for e in page.items:
        table.add_row(
            fmt_time(e.at),
            Text(e.actor),
            Text(e.tenant or ""),
            Text(e.action),
            Text(e.target),
            Text(e.outcome, style="green" if e.ok else "red"),
        )
    console.print(table)
    if page.next_cursor:
        console.print(Text(f"(the newest {len(page.items)}; --limit shows more)", style="dim"))


@audit_group.command("export", short_help="Write the audit log as JSON lines or CSV.")
@db_option
@server_options
@_filters
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one JSON object per line; csv: a header line, then one row per entry.",
)
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="Write to this file [default: standard output].",
)
@click.pass_context
def export_command(
    ctx: click.Context,
    db: str | None,
    since: float | None,
    until: float | None,
    action: str | None,
    actor: str | None,
    outcome: str | None,
    fmt: str,
    output: Any,
) -> None:
    """Write every matching audit entry, newest first: JSON lines (the fields of the HTTP
    API's audit items) or CSV (the same columns; detail as JSON text)."""
    with open_control(ctx, db, read_only=True) as runner:
        lines = runner.export_audit(
            "csv" if fmt == "csv" else "jsonl",
            since=since,
            until=until,
            action=action,
            actor=actor,
            outcome=outcome,
        )
        try:
            for line in lines:
                output.write(line)
        except RequestError as exc:
            raise CliError(str(exc)) from None
