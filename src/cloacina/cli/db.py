"""``cloacina db upgrade|current``: the database schema (Alembic migrations)."""

from __future__ import annotations

import click
from rich.text import Text

from cloacina.cli.consoles import out_console
from cloacina.cli.databases import display_url, require_tenant, sqlite_file
from cloacina.cli.errors import CliError
from cloacina.cli.options import (
    DEFAULT_TENANT,
    db_option,
    resolve_db,
    resolve_tenant,
    tenant_option,
)
from cloacina.service.databases import head_revision, schema_revision, upgrade_database


@click.group("db")
def db_group() -> None:
    """Manage the database schema."""


def stored_revision(url: str, tenant: str = DEFAULT_TENANT) -> tuple[str | None, str]:
    """The schema revision of the tenant's database (None: no Cloacina schema, or no SQLite
    file), without changing anything, and what to say about it."""
    return schema_revision(url, tenant)


def _where(url: str, tenant: str) -> str:
    path = sqlite_file(url, tenant)
    if path is not None:
        return str(path)
    shown = display_url(url)
    return shown if tenant == DEFAULT_TENANT else f"schema {tenant!r} of {shown}"


def _upgrade_hint(url: str, tenant: str) -> str:
    hint = f"cloacina db upgrade --db {display_url(url)}"
    return hint if tenant == DEFAULT_TENANT else f"{hint} --tenant {tenant}"


@db_group.command("upgrade")
@db_option
@tenant_option
@click.pass_context
def upgrade_command(ctx: click.Context, db: str | None, tenant: str | None) -> None:
    """Create the database or apply pending migrations, then print its schema revision.

    SQLite or PostgreSQL; with --tenant, the tenant's file or schema (create a tenant with
    `cloacina tenant create`).
    """
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    require_tenant(url, tenant_name)  # commands do not create tenants by accident
    before, head = upgrade_database(url, tenant_name)
    where = _where(url, tenant_name)
    if before is None:
        message = f"created {where} at schema revision {head} (head)"
    elif before == head:
        message = f"{where} is up to date at schema revision {head} (head)"
    else:
        message = f"upgraded {where} from schema revision {before} to {head} (head)"
    out_console().print(Text(message, style="green"))


@db_group.command("current")
@db_option
@tenant_option
@click.pass_context
def current_command(ctx: click.Context, db: str | None, tenant: str | None) -> None:
    """Print the database's schema revision, without changing anything (it needs no write
    access). SQLite or PostgreSQL; with --tenant, the tenant's file or schema."""
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    require_tenant(url, tenant_name)
    path = sqlite_file(url, tenant_name)
    if path is not None and not path.exists():
        raise CliError(
            f"no database at {str(path)!r}; create it with: {_upgrade_hint(url, tenant_name)}"
        )
    revision, detail = stored_revision(url, tenant_name)
    head = head_revision()
    console = out_console()
    if revision == head:
        console.print(Text(f"{revision} (head)", style="green"))
    elif revision is None:
        console.print(
            Text(
                f"none: no schema yet (head is {head}); run: {_upgrade_hint(url, tenant_name)}",
                style="yellow",
            )
        )
    else:
        # Older (upgrade the database) or newer (upgrade cloacina): the store's message says.
        console.print(Text(f"{revision} (head is {head}): {detail}", style="yellow"))
