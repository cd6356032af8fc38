"""``cloacina alerts add|list|remove|test|deliveries``: where alerts go (webhooks), and how
their delivery went. Alerts are raised and delivered by the processes that execute tasks
(``cloacina worker``, ``cloacina serve``); these commands manage the channels."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.text import Text

from cloacina.cli.actor import acts_locally
from cloacina.cli.consoles import out_console
from cloacina.cli.errors import CliError
from cloacina.cli.formatting import fmt_time, iso
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.render import new_table
from cloacina.errors import ConflictError, NotFoundError, RequestError
from cloacina.runner import DefaultRunner
from cloacina.service.alerts import RULES, AlertChannel, AlertDelivery
from cloacina.service.databases import display_url, sqlite_file


@contextmanager
def open_runner(
    ctx: click.Context, db: str | None, tenant: str | None, *, existing: bool = False
) -> Iterator[DefaultRunner]:
    """A runner that executes nothing on the tenant's database (``existing``: it must be
    there already, for commands that only read or remove)."""
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    path = sqlite_file(url, tenant_name)
    if existing and path is not None and not path.exists():
        raise CliError(f"no database at {str(path)!r} (from --db {display_url(url)})")
    with DefaultRunner(url, tenant=tenant_name, execute_tasks=False) as runner:
        try:
            yield runner
        except (NotFoundError, ConflictError, RequestError) as exc:
            raise CliError(str(exc)) from None


def channel_json(channel: AlertChannel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "name": channel.name,
        "kind": channel.kind,
        "url": channel.url,
        "rules": list(channel.rules),
        "workflow": channel.workflow,
        "enabled": channel.enabled,
        "created_at": iso(channel.created_at),
    }


def delivery_json(d: AlertDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "alert_id": d.alert_id,
        "channel": d.channel,
        "channel_id": d.channel_id,
        "rule": d.rule,
        "attempt": d.attempt,
        "at": iso(d.at),
        "worker_id": d.worker_id,
        "status_code": d.status_code,
        "error": d.error,
        "duration": d.duration,
        "alert_status": d.alert_status,
    }


@click.group("alerts")
def alerts_group() -> None:
    """Send alerts to webhooks: a run failed (once, not per retry), a run passed its
    deadline (@workflow(deadline=...)), a worker was lost, a task was recovered after a
    crash.

    \b
    cloacina alerts add ops https://hooks.example.com/cloacina
    cloacina alerts add etl-failures URL --rule run_failed --workflow etl
    cloacina alerts test ops
    cloacina alerts deliveries

    Each alert is POSTed as JSON with the header X-Cloacina-Signature:
    sha256=<hex HMAC-SHA256 of the body, keyed with the channel's secret>, shown once by
    `alerts add`. Workers deliver them, retrying failures with a back-off.
    """


@alerts_group.command("add", short_help="Send alerts to a webhook (its secret is shown once).")
@click.argument("name")
@click.argument("url")
@click.option(
    "--rule",
    "rules",
    multiple=True,
    type=click.Choice(RULES),
    help="An alert rule the channel wants (repeat it) [default: every rule].",
)
@click.option("--workflow", default=None, metavar="NAME", help="Only alerts of this workflow.")
@click.option(
    "--secret-env",
    default=None,
    metavar="VAR",
    help="Sign with the secret in this environment variable [default: make one].",
)
@click.option("--disabled", is_flag=True, help="Add it switched off.")
@db_option
@tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print the channel (and secret) as JSON.")
@click.pass_context
@acts_locally
def add_command(
    ctx: click.Context,
    name: str,
    url: str,
    rules: tuple[str, ...],
    workflow: str | None,
    secret_env: str | None,
    disabled: bool,
    db: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Add alert channel NAME: the webhook at URL gets the alerts of the chosen rules. The
    signing secret is printed this once, alone on the last line (keep it to verify the
    X-Cloacina-Signature header); nothing shows it again."""
    secret = None
    if secret_env is not None:
        secret = os.environ.get(secret_env)
        if not secret:
            raise CliError(f"--secret-env {secret_env}: that environment variable is not set")
    with open_runner(ctx, db, tenant) as runner:
        channel = runner.add_alert_channel(
            name,
            url,
            rules=list(rules) or None,
            workflow=workflow,
            secret=secret,
            enabled=not disabled,
        )
    if as_json:
        echo_json({**channel_json(channel), "secret": channel.secret})
        return
    console = out_console()
    console.print(
        Text.assemble(
            ("Added alert channel ", "bold green"),
            (channel.name, "bold"),
            f" ({channel.id[:8]}): {', '.join(channel.rules)}"
            + (f" of workflow {channel.workflow}" if channel.workflow else "")
            + (" (disabled)" if not channel.enabled else ""),
        ),
        soft_wrap=True,
    )
    if secret_env is None:
        console.print(
            Text("Its signing secret is shown once: store it now.", style="yellow"),
            soft_wrap=True,
        )
        click.echo(channel.secret)  # alone on the last line, for scripts


@alerts_group.command("list", short_help="List the alert channels (never their secrets).")
@db_option
@tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, db: str | None, tenant: str | None, as_json: bool) -> None:
    """List the alert channels by name: their URLs, rules and workflow filters."""
    with open_runner(ctx, db, tenant, existing=True) as runner:
        channels = runner.list_alert_channels()
    if as_json:
        echo_json([channel_json(c) for c in channels])
        return
    console = out_console()
    if not channels:
        console.print("no alert channels: add one with `cloacina alerts add NAME URL`")
        return
    table = new_table("Alert channels")
    for column in ("id", "name", "url", "rules", "workflow", "enabled"):
        table.add_column(column, overflow="fold", no_wrap=column == "id")
    for c in channels:
        table.add_row(
            c.id[:8],
            Text(c.name),
            Text(c.url),
            ", ".join(c.rules),
            Text(c.workflow or "(all)"),
            "yes" if c.enabled else Text("no", style="yellow"),
        )
    console.print(table)


@alerts_group.command("remove", short_help="Remove an alert channel.")
@click.argument("channel", metavar="NAME_OR_ID")
@db_option
@tenant_option
@click.pass_context
@acts_locally
def remove_command(ctx: click.Context, channel: str, db: str | None, tenant: str | None) -> None:
    """Remove alert channel NAME_OR_ID, with its queued alerts and their delivery log."""
    with open_runner(ctx, db, tenant, existing=True) as runner:
        runner.remove_alert_channel(channel)
    out_console().print(
        Text.assemble(("Removed alert channel ", "bold"), (channel, "bold")), soft_wrap=True
    )


@alerts_group.command("test", short_help="Send a test alert to a channel.")
@click.argument("channel", metavar="NAME_OR_ID")
@click.option(
    "--queue-only",
    is_flag=True,
    help="Only queue it, for a worker to deliver [default: deliver it from here now].",
)
@db_option
@tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
@acts_locally
def test_command(
    ctx: click.Context,
    channel: str,
    queue_only: bool,
    db: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Send a test alert (rule "test") to NAME_OR_ID alone and say how the webhook answered;
    exit code 1 if it did not accept it (the alert stays queued for the workers to retry)."""
    with open_runner(ctx, db, tenant, existing=True) as runner:
        result = runner.test_alert_channel(channel, deliver=not queue_only)
    if as_json:
        echo_json(
            {
                "alert_id": result.alert_id,
                "attempted": result.attempted,
                "delivered": result.delivered,
                "status_code": result.status_code,
                "error": result.error,
            }
        )
    else:
        console = out_console()
        if not result.attempted:
            console.print(f"Queued test alert {result.alert_id}: a worker delivers it.")
        elif result.delivered:
            console.print(
                Text.assemble(
                    ("Delivered ", "bold green"),
                    f"test alert {result.alert_id} (HTTP {result.status_code})",
                )
            )
        else:
            console.print(
                Text.assemble(
                    ("Not delivered: ", "bold red"),
                    Text(f"{result.error}"),
                    f" (test alert {result.alert_id}; the workers retry it)",
                ),
                soft_wrap=True,
            )
    if result.attempted and not result.delivered:
        ctx.exit(1)


@alerts_group.command("deliveries", short_help="Show the latest delivery attempts.")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many."
)
@db_option
@tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def deliveries_command(
    ctx: click.Context, limit: int, db: str | None, tenant: str | None, as_json: bool
) -> None:
    """The latest attempts to deliver alerts, newest first: the channel, the rule, the
    answer (HTTP status or error) and how long it took."""
    with open_runner(ctx, db, tenant, existing=True) as runner:
        deliveries = runner.list_alert_deliveries(limit)
    if as_json:
        echo_json([delivery_json(d) for d in deliveries])
        return
    console = out_console()
    if not deliveries:
        console.print("no alert deliveries yet")
        return
    table = new_table("Alert deliveries")
    for column in ("at", "channel", "rule", "attempt", "answer", "took", "alert"):
        table.add_column(column, overflow="fold")
    for d in deliveries:
        answer = (
            Text(str(d.status_code), style="green")
            if d.error is None
            else Text(d.error, style="red")
        )
        took = f"{d.duration * 1000:.0f}ms" if d.duration is not None else ""
        table.add_row(
            fmt_time(d.at), Text(d.channel), d.rule, str(d.attempt), answer, took, d.alert_status
        )
    console.print(table)
