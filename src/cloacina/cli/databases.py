"""Reaching the database behind ``--db``: where a SQLite tenant's file is, which PostgreSQL
schemas hold tenants, whether a tenant exists, opening an existing store, and URLs safe to
print."""

from __future__ import annotations

from pathlib import Path

from cloacina.cli.errors import CliError
from cloacina.cli.options import DB_ENV, DEFAULT_TENANT
from cloacina.errors import StoreError
from cloacina.store import Store, normalize_url, open_store


def sqlite_file(url: str, tenant: str = DEFAULT_TENANT) -> Path | None:
    """The file behind a SQLite URL (``tenant``'s file beside it), ``None`` for other
    databases."""
    url = normalize_url(url)
    if not url.startswith("sqlite:"):
        return None
    from cloacina.store.sqlite import sqlite_path, tenant_url

    return Path(sqlite_path(tenant_url(url, tenant)))


def open_existing_store(url: str, tenant: str = DEFAULT_TENANT, *, read_only: bool = True) -> Store:
    """Open a database (and tenant) that must exist already: read commands create neither.

    Read-only by default: no migration (an old schema is a clear error that names
    ``cloacina db upgrade``), no write, and a database this process cannot write is fine.
    Commands that write (``executions prune``) pass ``read_only=False``.
    """
    path = sqlite_file(url, tenant)
    if path is not None and not path.exists():
        if tenant != DEFAULT_TENANT:
            raise CliError(
                f"no tenant {tenant!r} in {url}: no database at {str(path)!r}; create it with: "
                f"cloacina tenant create {tenant} --db {url}"
            )
        raise CliError(
            f"no database at {str(path)!r} (from --db {url}); run a workflow first, or point "
            f"--db (or ${DB_ENV}) at an existing database"
        )
    if path is None and tenant == DEFAULT_TENANT and tenant not in postgres_tenants(url):
        raise CliError(
            f"no Cloacina database in {display_url(url)} (schema {tenant!r} has no Cloacina "
            "tables); run a workflow or start a worker there first, or create the tables with: "
            f"cloacina db upgrade --db {display_url(url)}"
        )
    require_tenant(url, tenant)
    return open_store(url, tenant=tenant, read_only=read_only)


def is_postgres(url: str) -> bool:
    return normalize_url(url).startswith(("postgresql:", "postgresql+", "postgres:"))


def postgres_url(url: str) -> str:
    """A PostgreSQL URL as SQLAlchemy names the dialect (``postgres://`` is an alias)."""
    url = normalize_url(url)
    return "postgresql:" + url[len("postgres:") :] if url.startswith("postgres:") else url


def postgres_tenants(url: str) -> list[str]:
    """The schemas of a PostgreSQL database that hold a Cloacina tenant."""
    from cloacina.store.postgres import list_schemas

    try:
        return list_schemas(postgres_url(url))
    except StoreError as exc:  # it says whether the server could not be reached, and what to do
        raise CliError(str(exc)) from None


def tenant_exists(url: str, tenant: str) -> bool:
    """Whether ``tenant`` has a database (SQLite file, PostgreSQL schema) at ``url``."""
    path = sqlite_file(url, tenant)
    if path is not None:
        return path.exists()
    return tenant in postgres_tenants(url)


def require_tenant(url: str, tenant: str) -> None:
    """A clear error unless tenant ``tenant`` exists (``public`` always does: opening a
    database creates it). Commands do not create tenants by accident, only
    ``cloacina tenant create`` does."""
    if tenant == DEFAULT_TENANT or tenant_exists(url, tenant):
        return
    raise CliError(
        f"no tenant {tenant!r} in {display_url(url)}; create it with: "
        f"cloacina tenant create {tenant} --db {display_url(url)}"
    )


def display_url(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    if not is_postgres(url):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(postgres_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return url
