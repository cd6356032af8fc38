"""``cloacina db upgrade|current``: the database schema (Alembic migrations)."""

from __future__ import annotations

import click
from rich.text import Text

from cloacina.cli.consoles import out_console
from cloacina.cli.databases import sqlite_file
from cloacina.cli.errors import CliError
from cloacina.cli.options import db_option, resolve_db
from cloacina.store import open_store


@click.group("db")
def db_group() -> None:
    """Manage the database schema."""


def stored_revision(url: str) -> tuple[bool, str | None]:
    """Whether the (SQLite) database exists, and its schema revision, without changing it."""
    path = sqlite_file(url)
    if path is None:
        raise CliError(
            f"reading the schema revision of {url!r} is supported for SQLite databases only"
        )
    if not path.exists():
        return False, None
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    from cloacina.store.migrate import current_revision

    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        return True, current_revision(engine)
    except SQLAlchemyError as exc:
        raise CliError(
            f"cannot read database {str(path)!r}: {exc.orig if hasattr(exc, 'orig') else exc}. "
            "Is it a SQLite database file?"
        ) from None
    finally:
        engine.dispose()


@db_group.command("upgrade")
@db_option
@click.pass_context
def upgrade_command(ctx: click.Context, db: str | None) -> None:
    """Create the database or apply pending migrations, then print its schema revision."""
    url = resolve_db(ctx, db)
    path = sqlite_file(url)
    existed, before = stored_revision(url) if path is not None else (True, None)
    from cloacina.store.migrate import head_revision

    store = open_store(url)  # opening a store migrates it to the newest schema
    store.close()
    head = head_revision()
    where = str(path) if path is not None else url
    console = out_console()
    if not existed:
        message = f"created {where} at schema revision {head} (head)"
    elif before == head:
        message = f"{where} is up to date at schema revision {head} (head)"
    else:
        message = f"upgraded {where} from schema revision {before or 'none'} to {head} (head)"
    console.print(Text(message, style="green"))


@db_group.command("current")
@db_option
@click.pass_context
def current_command(ctx: click.Context, db: str | None) -> None:
    """Print the database's schema revision (without changing anything)."""
    url = resolve_db(ctx, db)
    existed, revision = stored_revision(url)
    if not existed:
        raise CliError(
            f"no database at {str(sqlite_file(url))!r}; create it with: cloacina db upgrade"
        )
    from cloacina.store.migrate import head_revision

    head = head_revision()
    console = out_console()
    if revision == head:
        console.print(Text(f"{revision} (head)", style="green"))
    elif revision is None:
        console.print(
            Text(f"none: no schema yet (head is {head}); run: cloacina db upgrade", style="yellow")
        )
    else:
        console.print(
            Text(f"{revision} (head is {head}; run: cloacina db upgrade)", style="yellow")
        )
