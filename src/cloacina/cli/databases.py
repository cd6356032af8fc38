"""Reaching the database behind ``--db``: where a SQLite tenant's file is, which PostgreSQL
schemas hold tenants, whether a tenant exists, opening a runner on an existing database, and
URLs safe to print."""

from __future__ import annotations

from cloacina.cli.errors import CliError
from cloacina.cli.options import DB_ENV, DEFAULT_TENANT
from cloacina.errors import StoreError
from cloacina.runner import DefaultRunner
from cloacina.service import databases
from cloacina.service.databases import display_url, is_postgres, postgres_url, sqlite_file

__all__ = [
    "display_url",
    "is_postgres",
    "open_existing_runner",
    "postgres_tenants",
    "postgres_url",
    "require_tenant",
    "sqlite_file",
    "tenant_exists",
]


def open_existing_runner(
    url: str, tenant: str = DEFAULT_TENANT, *, read_only: bool = True
) -> DefaultRunner:
    """A runner that executes nothing, on a database (and tenant) that must exist already:
    read commands create neither.

    Read-only by default: no migration (an old schema is a clear error that names
    ``cloacina db upgrade``), no write, and a database this process cannot write is fine.
    Commands that write (``executions prune``, control) pass ``read_only=False``.
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
    return DefaultRunner(url, tenant=tenant, execute_tasks=False, read_only=read_only)


def postgres_tenants(url: str) -> list[str]:
    """The schemas of a PostgreSQL database that hold a Cloacina tenant."""
    try:
        return databases.postgres_tenants(url)
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
