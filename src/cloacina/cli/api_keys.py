"""``cloacina api-keys create|list|revoke``: the keys of the HTTP API, made on the machine that
owns the database (they live in its default tenant, whichever tenant they serve)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

import click
from rich.text import Text

from cloacina.cli.actor import acts_locally
from cloacina.cli.consoles import err_console, out_console
from cloacina.cli.durations import DURATION, fmt_span
from cloacina.cli.errors import CliError
from cloacina.cli.formatting import fmt_time
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import DEFAULT_TENANT, check_tenant_name, db_option, resolve_db
from cloacina.cli.remote import open_client, server_options
from cloacina.cli.render import new_table
from cloacina.errors import ApiKeyNotFoundError, RequestError, TenantNotFoundError
from cloacina.runner import DefaultRunner
from cloacina.service.databases import display_url, sqlite_file
from cloacina.service.keys import ApiKeyInfo, Role

if TYPE_CHECKING:
    from cloacina.cli.remote import Service


@contextmanager
def open_control(
    ctx: click.Context, db: str | None, *, read_only: bool = False
) -> Iterator[Service]:
    """The --server's client, or a runner on the default tenant of ``--db`` that executes
    nothing (keys and the audit log live there). Reading needs an existing database;
    making a key may create it."""
    client = open_client(ctx, None)
    if client is not None:
        with client:
            yield client
        return
    url = resolve_db(ctx, db)
    path = sqlite_file(url, DEFAULT_TENANT)
    if read_only and path is not None and not path.exists():
        raise CliError(f"no database at {str(path)!r} (from --db {display_url(url)})")
    with DefaultRunner(
        url, tenant=DEFAULT_TENANT, execute_tasks=False, read_only=read_only
    ) as runner:
        yield runner


@click.group("api-keys")
def api_keys_group() -> None:
    """Manage the API keys of the HTTP API (`cloacina serve`).

    \b
    cloacina api-keys create --name ci --role operator --tenant acme --expires 90d
    cloacina api-keys list
    cloacina api-keys revoke ID
    """


@api_keys_group.command("create", short_help="Make an API key (shown once).")
@db_option
@server_options
@click.option("--name", required=True, help="Who or what uses the key (shown in lists and audit).")
@click.option(
    "--role",
    required=True,
    type=click.Choice([r.value for r in Role]),
    help="viewer reads; operator also starts, cancels, pauses and resumes runs; admin does "
    "everything (packages, keys, tenants, audit).",
)
@click.option(
    "--tenant",
    "key_tenant",
    default=None,
    metavar="NAME",
    help="The one tenant the key serves (it must exist) [default: every tenant].",
)
@click.option(
    "--expires",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="Valid this long: 90d, 12h... [default: until revoked].",
)
@click.pass_context
@acts_locally
def create_command(
    ctx: click.Context,
    db: str | None,
    name: str,
    role: str,
    key_tenant: str | None,
    expires: float | None,
) -> None:
    """Make an API key and print it: it is shown this once (only its hash is stored). The
    key is alone on the last line of the output."""
    if key_tenant is not None:
        key_tenant = check_tenant_name(key_tenant)
    if expires is not None and expires <= 0:
        raise CliError("--expires must be longer than 0s (e.g. 90d)")
    with open_control(ctx, db) as runner:
        try:
            created = runner.create_api_key(name, role, tenant=key_tenant, expires_in=expires)
        except (RequestError, TenantNotFoundError) as exc:
            raise CliError(str(exc)) from None
    info = created.info
    scope = f"tenant {info.tenant}" if info.tenant else "every tenant"
    until = f"expires {fmt_time(info.expires_at)} (in {fmt_span(expires)})" if expires else ""
    console = out_console()
    console.print(
        Text.assemble(
            ("Created API key ", "bold green"),
            (info.id, "bold"),
            f" ({info.name}): role {info.role.value}, {scope}" + (f", {until}" if until else ""),
        ),
        soft_wrap=True,
    )
    console.print(
        Text("This key is shown once: store it now (only its hash is kept).", style="yellow"),
        soft_wrap=True,
    )
    click.echo(created.key)  # alone on the last line, for scripts


def _resolve(runner: Service, ident: str) -> ApiKeyInfo:
    """The key whose id is ``ident`` or starts with it (a unique prefix)."""
    keys = runner.list_api_keys()
    exact = [k for k in keys if k.id == ident]
    if exact:
        return exact[0]
    found = [k for k in keys if ident and k.id.startswith(ident)]
    if len(found) == 1:
        return found[0]
    if found:
        raise CliError(f"{ident!r} matches {len(found)} API keys; give more of the id")
    raise CliError(f"no API key with id {ident!r} (see: cloacina api-keys list)")


def _date(value: datetime | None) -> str:
    return fmt_time(value)[:10] if value is not None else ""


@api_keys_group.command("list", short_help="List the API keys (never their secrets).")
@db_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """List the API keys, revoked and expired ones too, oldest first: their ids, names,
    roles, tenants, first characters and last use. Secrets are never stored."""
    with open_control(ctx, db, read_only=True) as runner:
        keys = runner.list_api_keys()
    if as_json:
        echo_json([k.to_dict() for k in keys])
        return
    console = out_console()
    if not keys:
        console.print("no API keys: make one with `cloacina api-keys create --name NAME --role R`")
        return
    table = new_table("API keys")
    for column in ("id", "name", "role", "tenant", "key", "state", "expires", "last used"):
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "key", "state"))
    for k in keys:
        style = {"active": "green", "revoked": "red", "expired": "yellow"}[k.state]
        table.add_row(
            k.id[:8],  # a unique prefix does for revoke; --json has the whole id
            Text(k.name),
            k.role.value,
            Text(k.tenant or "(all)"),
            k.prefix,
            Text(k.state, style=style),
            _date(k.expires_at) or "never",
            _date(k.last_used_at) or "never",
        )
    console.print(table)


@api_keys_group.command("revoke", short_help="Revoke an API key at once.")
@click.argument("key_id", metavar="ID")
@db_option
@server_options
@click.pass_context
@acts_locally
def revoke_command(ctx: click.Context, key_id: str, db: str | None) -> None:
    """Revoke API key ID (a unique prefix will do): requests with it fail from now on."""
    with open_control(ctx, db) as runner:
        info = _resolve(runner, key_id)
        try:
            runner.revoke_api_key(info.id)
        except ApiKeyNotFoundError as exc:
            raise CliError(str(exc)) from None
    was = " (it was revoked already)" if info.revoked_at is not None else ""
    out_console().print(
        Text.assemble(("Revoked API key ", "bold"), (info.id, "bold"), f" ({info.name}){was}"),
        soft_wrap=True,
    )
    if was:
        err_console().print(Text("nothing changed", style="dim"))
