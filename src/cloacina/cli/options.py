"""The ``--db`` and ``--tenant`` options every command takes, and which values they resolve to.

A command's own option wins, then the ``cloacina`` group's (which reads $CLOACINA_DB /
$CLOACINA_TENANT), then the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cloacina.cli.errors import CliError
from cloacina.errors import StoreError
from cloacina.store import check_tenant_name as store_check_tenant_name

DB_ENV = "CLOACINA_DB"
DEFAULT_DB = "sqlite:///cloacina.db"
TENANT_ENV = "CLOACINA_TENANT"
DEFAULT_TENANT = "public"

F = TypeVar("F", bound=Callable[..., Any])


# ---- the database option ---------------------------------------------------------------------
def db_option(func: F) -> F:
    """``--db URL`` on a command; falls back to the group's ``--db`` (or $CLOACINA_DB)."""
    return click.option(
        "--db",
        "db",
        default=None,
        metavar="URL",
        help=f"Database URL [default: ${DB_ENV} or {DEFAULT_DB}].",
    )(func)


def resolve_db(ctx: click.Context, value: str | None) -> str:
    """The database URL a command should use: its own ``--db``, else the group's."""
    if value:
        return value
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    url = obj.get("db")
    return url if isinstance(url, str) and url else os.environ.get(DB_ENV) or DEFAULT_DB


# ---- the tenant option -----------------------------------------------------------------------
def tenant_option(func: F) -> F:
    """``--tenant T`` on a command; falls back to the group's ``--tenant`` (or
    $CLOACINA_TENANT), else ``public``."""
    return click.option(
        "--tenant",
        "tenant",
        default=None,
        metavar="NAME",
        help=f"Tenant [default: ${TENANT_ENV} or {DEFAULT_TENANT}].",
    )(func)


def check_tenant_name(name: str) -> str:
    """``name`` if it is a valid tenant name (a PostgreSQL schema / SQLite file name part)."""
    try:
        return store_check_tenant_name(name)
    except StoreError as exc:
        raise CliError(str(exc)) from None


def resolve_tenant(ctx: click.Context, value: str | None) -> str:
    """The tenant a command should use: its own ``--tenant``, else the group's (which reads
    $CLOACINA_TENANT), else ``public``."""
    if not value:
        root = ctx.find_root()
        obj = root.obj if isinstance(root.obj, dict) else {}
        group = obj.get("tenant")
        value = (
            group
            if isinstance(group, str) and group
            else os.environ.get(TENANT_ENV) or DEFAULT_TENANT
        )
    return check_tenant_name(value)
