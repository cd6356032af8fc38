"""``cloacina tenant create|list|remove``: tenants of a database.

PostgreSQL keeps each tenant in a schema of its own; SQLite in a file of its own beside the
database file (``runs.db`` -> ``runs.acme.db``), ``public`` being the file itself.
"""

from __future__ import annotations

import sys

import click
from rich.text import Text

from cloacina.cli.actor import acts_locally
from cloacina.cli.consoles import out_console
from cloacina.cli.databases import display_url, sqlite_file
from cloacina.cli.errors import CliError
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import check_tenant_name, db_option, resolve_db
from cloacina.cli.render import new_table
from cloacina.errors import CloacinaError
from cloacina.service import tenants
from cloacina.service.types import TenantInfo


@click.group("tenant")
def tenant_group() -> None:
    """Manage tenants: isolated databases (PostgreSQL schemas, SQLite files) in one --db."""


def list_tenants(url: str) -> list[TenantInfo]:
    try:
        return tenants.list_tenants(url)
    except CloacinaError as exc:  # it says whether the server could not be reached
        raise CliError(str(exc)) from None


# ---- create ----------------------------------------------------------------------------------
@tenant_group.command("create")
@click.argument("name")
@db_option
@click.pass_context
@acts_locally
def create_command(ctx: click.Context, name: str, db: str | None) -> None:
    """Create tenant NAME (a PostgreSQL schema or a SQLite file) and its tables.

    Creating a tenant that exists already only brings its schema up to date.
    """
    url = resolve_db(ctx, db)
    name = check_tenant_name(name)
    try:
        # Creates the schema/file and migrates it (audited).
        is_new = tenants.create_tenant(url, name)
    except CloacinaError as exc:
        raise CliError(str(exc)) from None
    console = out_console()
    where = tenants.tenant_location(url, name)
    if not is_new:
        console.print(Text(f"Tenant {name} already exists, up to date: {where}"))
    else:
        created = Text.assemble(("Created tenant ", "bold green"), (name, "bold"), f": {where}")
        console.print(created)
    console.print(
        Text(f"Use it with --tenant {name} (or CLOACINA_TENANT={name}).", style="dim"),
        soft_wrap=True,
    )


# ---- list ------------------------------------------------------------------------------------
@tenant_group.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the tenants as JSON.")
@click.pass_context
def list_command(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """List the tenants of the database."""
    url = resolve_db(ctx, db)
    tenants = list_tenants(url)
    if as_json:
        echo_json([{"tenant": t.name, "location": t.location} for t in tenants])
        return
    console = out_console()
    if not tenants:
        console.print(Text(f"No tenants in {display_url(url)} (no database yet).", style="dim"))
        return
    title = f"Tenants in {display_url(url)}"
    table = new_table(title)
    table.min_width = min(len(title), console.width)  # the title is not folded to the table
    # Names are never cut: a tenant's stays on one line while the location (which folds)
    # keeps 14 columns, else it folds too. The title names the database, so a location is
    # the tenant's file beside it (SQLite) or its schema (PostgreSQL); the JSON has it whole.
    longest = max(len(t.name) for t in tenants)
    one_line = longest + 3 + 14 <= console.width
    table.add_column("tenant", no_wrap=one_line, overflow="fold")
    table.add_column("location", overflow="fold")
    for t in tenants:
        path = sqlite_file(url, t.name)
        where = path.name if path is not None else f"schema {t.name!r}"
        table.add_row(Text(t.name), Text(where))
    console.print(table)


# ---- remove ----------------------------------------------------------------------------------
@tenant_group.command("remove")
@click.argument("name")
@db_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@acts_locally
def remove_command(ctx: click.Context, name: str, db: str | None, yes: bool) -> None:
    """Remove tenant NAME and everything in it: runs, packages, schedules. Irreversible.

    Refuses `public`, and a tenant that running workers still use (stop them first).
    Asks for confirmation unless --yes is given (and refuses without a terminal).
    """
    url = resolve_db(ctx, db)
    name = check_tenant_name(name)
    try:
        tenants.check_removable(url, name)
    except CloacinaError as exc:
        raise CliError(str(exc)) from None
    where = tenants.tenant_location(url, name)
    if not yes:
        if not sys.stdin.isatty():
            raise CliError(
                f"removing tenant {name!r} deletes all its data; pass --yes to confirm "
                "(no terminal to ask on)"
            )
        click.confirm(
            f"Remove tenant {name!r} ({where}) and all its runs, packages and schedules?",
            abort=True,
        )
    try:
        tenants.remove_tenant(url, name)
    except CloacinaError as exc:
        raise CliError(str(exc)) from None
    out_console().print(Text.assemble(("Removed tenant ", "bold"), (name, "bold"), f": {where}"))
