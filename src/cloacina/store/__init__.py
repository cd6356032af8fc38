"""The store: the only package that talks SQL. ``open_store(url)`` picks the backend.

Importing ``cloacina.store.records`` must not pull in SQLAlchemy (a package's worker process
uses the records only), so the store classes are imported on first use.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from cloacina.errors import InvalidTenantNameError, StoreError
from cloacina.settings import DEFAULTS

if TYPE_CHECKING:
    from cloacina.store.base import Store, WriteTx


def __getattr__(name: str) -> Any:
    if name in ("Store", "WriteTx"):
        from cloacina.store import base

        return getattr(base, name)
    raise AttributeError(f"module 'cloacina.store' has no attribute {name!r}")


_TENANT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_tenant_name(name: str) -> str:
    """A tenant name: 1-63 lower-case letters, digits and ``_``, starting with a letter or
    ``_``, not ``pg_*`` or ``information_schema`` — the same on every backend, so a tenant
    can move from SQLite to PostgreSQL (where it names a schema)."""
    if (
        not isinstance(name, str)
        or not _TENANT.match(name)
        or name.startswith(("pg_", "information_schema"))
    ):
        raise InvalidTenantNameError(
            f"invalid tenant name {name!r}: use 1-63 lower-case letters, digits and '_', "
            "starting with a letter or '_' (and not pg_* or information_schema)"
        )
    return name


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def normalize_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs, the seed's ``sqlite://path`` and bare ``*.db`` paths."""
    if "://" in url or url.startswith("sqlite:"):
        return url
    if _SCHEME.match(url):
        raise StoreError(
            f"malformed database URL {url!r}: expected scheme://..., e.g. "
            "postgresql://user@host:5432/db or sqlite:///path/to/file.db"
        )
    return f"sqlite:///{url}"


def open_store(
    url: str,
    *,
    tenant: str = "public",
    busy_timeout: float = DEFAULTS.busy_timeout,
    pool_size: int = DEFAULTS.pool_size,
    max_overflow: int = DEFAULTS.max_overflow,
    pool_timeout: float = DEFAULTS.pool_timeout,
    connect_timeout: float = DEFAULTS.connect_timeout,
    read_only: bool = False,
) -> Store:
    """Open (creating and migrating when needed) the database at ``url`` for ``tenant``.

    SQLite keeps each tenant but ``public`` in a file of its own beside the given one
    (``runs.db`` -> ``runs.<tenant>.db``); PostgreSQL keeps each in a schema of its own.
    Timeouts and pool sizes default to :data:`cloacina.settings.DEFAULTS` (a runner passes
    its checked :class:`~cloacina.settings.Settings`).

    ``read_only=True`` opens an existing database to read it: nothing is created or migrated
    (no DDL, no CREATE rights needed), the schema revision is checked instead (a
    :class:`~cloacina.errors.SchemaError` says how to upgrade it), writes are refused, and a
    SQLite file or directory this process cannot write is fine.
    """
    url = normalize_url(url)
    if url.startswith("sqlite:"):
        from cloacina.store.sqlite import SQLiteStore, tenant_url

        return SQLiteStore(tenant_url(url, tenant), busy_timeout=busy_timeout, read_only=read_only)
    if url.startswith(("postgresql:", "postgresql+", "postgres:")):
        from cloacina.store.postgres import PostgresStore

        if url.startswith("postgres:"):
            url = "postgresql:" + url[len("postgres:") :]
        return PostgresStore(
            url,
            schema=tenant,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            connect_timeout=connect_timeout,
            read_only=read_only,
        )
    raise StoreError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/file.db "
        "(or postgresql://user@host/db)"
    )


__all__ = ["Store", "StoreError", "WriteTx", "normalize_url", "open_store"]
