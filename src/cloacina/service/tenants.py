"""Tenants of a database: list, create and remove them.

PostgreSQL keeps each tenant in a schema of its own; SQLite in a file of its own beside the
database file (``runs.db`` -> ``runs.acme.db``), ``public`` being the file itself. These are
functions of a URL (a tenant exists before any runner of it); ``DefaultRunner`` offers the
reading ones for its own database through :class:`TenantService`.
"""

from __future__ import annotations

import time
from pathlib import Path

from cloacina.errors import (
    ConflictError,
    InvalidTenantNameError,
    StoreError,
    TenantNotFoundError,
)
from cloacina.model.namespace import DEFAULT_TENANT
from cloacina.service.audit import audit_change
from cloacina.service.databases import (
    check_tenant_name,
    display_url,
    postgres_tenants,
    postgres_url,
    sqlite_file,
    tenant_exists,
)
from cloacina.service.executions import worker_state
from cloacina.service.types import TenantInfo
from cloacina.store import open_store

#: Files SQLite keeps beside a database file while it is (or was) open.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def tenant_location(url: str, tenant: str) -> str:
    """Where tenant ``tenant`` of ``url`` lives, for people (no password)."""
    path = sqlite_file(url, tenant)
    if path is not None:
        return str(path)
    return f"schema {tenant!r} of {display_url(url)}"


def _sqlite_tenants(base: Path) -> list[TenantInfo]:
    """``public`` (the database file ``base``) if it exists, and the tenant files beside it."""
    found: list[TenantInfo] = []
    if base.exists():
        found.append(TenantInfo(DEFAULT_TENANT, str(base)))
    suffix = base.suffix or ".db"
    prefix = f"{base.stem}."
    if base.parent.is_dir():
        for path in sorted(base.parent.glob(f"{base.stem}.*{suffix}")):
            name = path.name[len(prefix) : len(path.name) - len(suffix)]
            if name == DEFAULT_TENANT or not path.is_file():
                continue
            try:
                check_tenant_name(name)
            except InvalidTenantNameError:
                continue  # not a tenant file (a name no tenant can have)
            found.append(TenantInfo(name, str(path)))
    return found


def list_tenants(url: str) -> list[TenantInfo]:
    """The tenants of the database at ``url`` (none when it does not exist yet)."""
    base = sqlite_file(url)
    if base is not None:
        return _sqlite_tenants(base)
    return [TenantInfo(name, tenant_location(url, name)) for name in postgres_tenants(url)]


def create_tenant(url: str, name: str) -> bool:
    """Create tenant ``name`` (a schema or a file) and its tables, or bring an existing one's
    schema up to date. True when it was created, False when it existed."""
    with audit_change(url, "tenant.create", str(name), tenant=str(name)):
        name = check_tenant_name(name)
        existed = tenant_exists(url, name)
        open_store(url, tenant=name).close()  # creates the schema/file and migrates it
    return not existed


def live_workers(url: str, tenant: str) -> int:
    """How many workers of the tenant are running and heard of lately."""
    store = open_store(url, tenant=tenant)
    try:
        now = time.time()
        return sum(1 for w in store.list_workers() if worker_state(w, now) == "running")
    finally:
        store.close()


def check_removable(url: str, name: str) -> str:
    """The checked name of a tenant that :func:`remove_tenant` may remove now: not
    ``public``, existing (:class:`TenantNotFoundError`), and no running worker uses it
    (:class:`ConflictError`)."""
    name = check_tenant_name(name)
    if name == DEFAULT_TENANT:
        raise ConflictError(
            "refusing to remove the public tenant: it is the database itself "
            "(delete the database to remove it)"
        )
    if not tenant_exists(url, name):
        raise TenantNotFoundError(f"no tenant {name!r} in {display_url(url)}")
    workers = live_workers(url, name)
    if workers:
        raise ConflictError(
            f"tenant {name!r} has {workers} running worker(s) (see: cloacina workers list "
            f"--tenant {name}); stop them before removing it"
        )
    return name


def _remove_sqlite(path: Path) -> None:
    for candidate in [path, *(path.with_name(path.name + s) for s in SQLITE_SIDE_FILES)]:
        try:
            candidate.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot remove {str(candidate)!r}: {exc}") from None


def remove_tenant(url: str, name: str) -> None:
    """Remove tenant ``name`` and everything in it (runs, packages, schedules): refused as
    :func:`check_removable` says. Irreversible."""
    with audit_change(url, "tenant.remove", str(name), tenant=str(name)):
        _remove_tenant(url, name)


def _remove_tenant(url: str, name: str) -> None:
    name = check_removable(url, name)
    path = sqlite_file(url, name)
    if path is not None:
        _remove_sqlite(path)
        return
    from sqlalchemy.exc import SQLAlchemyError

    from cloacina.store.postgres import drop_schema

    try:
        drop_schema(postgres_url(url), name)
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip()
        raise StoreError(f"cannot remove tenant {name!r}: {detail}") from None


class TenantService:
    """The tenants of a runner's database, as methods of ``DefaultRunner``."""

    url: str

    def list_tenants(self) -> list[TenantInfo]:
        """The tenants of this runner's database."""
        return list_tenants(self.url)

    def tenant_names(self) -> list[str]:
        """The names of the tenants of this runner's database."""
        return [t.name for t in list_tenants(self.url)]


__all__ = [
    "TenantService",
    "check_removable",
    "create_tenant",
    "list_tenants",
    "live_workers",
    "remove_tenant",
    "tenant_location",
]
