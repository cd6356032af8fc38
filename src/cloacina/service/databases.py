"""Where a database (and each tenant of it) lives, URLs safe to print, and its schema
revision: what faces need to know about ``--db`` before (or without) opening a runner."""

from __future__ import annotations

from pathlib import Path

from cloacina.errors import SchemaError
from cloacina.model.namespace import DEFAULT_TENANT
from cloacina.store import check_tenant_name as _check_tenant_name
from cloacina.store import normalize_url, open_store


def check_tenant_name(name: str) -> str:
    """``name`` if it is a valid tenant name, else :class:`InvalidTenantNameError`."""
    return _check_tenant_name(name)


def is_postgres(url: str) -> bool:
    return normalize_url(url).startswith(("postgresql:", "postgresql+", "postgres:"))


def postgres_url(url: str) -> str:
    """A PostgreSQL URL as SQLAlchemy names the dialect (``postgres://`` is an alias)."""
    url = normalize_url(url)
    return "postgresql:" + url[len("postgres:") :] if url.startswith("postgres:") else url


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


def sqlite_file(url: str, tenant: str = DEFAULT_TENANT) -> Path | None:
    """The file behind a SQLite URL (``tenant``'s file beside it), ``None`` for other
    databases."""
    url = normalize_url(url)
    if not url.startswith("sqlite:"):
        return None
    from cloacina.store.sqlite import sqlite_path, tenant_url

    return Path(sqlite_path(tenant_url(url, tenant)))


def postgres_tenants(url: str) -> list[str]:
    """The schemas of a PostgreSQL database that hold a Cloacina tenant (a
    :class:`~cloacina.errors.StoreError` says when the server cannot be reached)."""
    from cloacina.store.postgres import list_schemas

    return list_schemas(postgres_url(url))


def tenant_exists(url: str, tenant: str) -> bool:
    """Whether ``tenant`` has a database (SQLite file, PostgreSQL schema) at ``url``."""
    path = sqlite_file(url, tenant)
    if path is not None:
        return path.exists()
    return tenant in postgres_tenants(url)


def head_revision() -> str:
    """The schema revision this version of Cloacina works with."""
    from cloacina.store.migrate import head_revision as head

    return head()


def schema_revision(url: str, tenant: str = DEFAULT_TENANT) -> tuple[str | None, str]:
    """The schema revision of the tenant's database (None: no Cloacina schema, or no SQLite
    file), read without changing anything, and what to say about it."""
    path = sqlite_file(url, tenant)
    if path is not None and not path.exists():
        return None, f"no database at {str(path)!r}"
    try:
        open_store(url, tenant=tenant, read_only=True).close()
    except SchemaError as exc:
        return exc.revision, str(exc)
    return head_revision(), "up to date"


def upgrade_database(url: str, tenant: str = DEFAULT_TENANT) -> tuple[str | None, str]:
    """Create the tenant's database or apply its pending migrations: ``(revision before,
    revision now)`` (before is None when there was no schema)."""
    before, _ = schema_revision(url, tenant)
    open_store(url, tenant=tenant).close()  # opening a store to write migrates it
    return before, head_revision()


__all__ = [
    "check_tenant_name",
    "display_url",
    "head_revision",
    "is_postgres",
    "postgres_tenants",
    "postgres_url",
    "schema_revision",
    "sqlite_file",
    "tenant_exists",
    "upgrade_database",
]
