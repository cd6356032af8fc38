"""The ``--db`` and ``--tenant`` options every command takes, and which values they resolve to;
and the options generated from :class:`~cloacina.settings.Settings` (``--poll-interval``...).

A command's own option wins, then the ``cloacina`` group's (which reads $CLOACINA_DB /
$CLOACINA_TENANT), then the default. A setting's option wins over its ``CLOACINA_*``
variable, which wins over its default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cloacina.cli.errors import CliError
from cloacina.errors import SettingsError, StoreError
from cloacina.service.databases import check_tenant_name as service_check_tenant_name
from cloacina.settings import (
    Settings,
    default_display,
    env_var,
    option_flag,
    option_source,
    setting_names,
    spec,
)

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
        return service_check_tenant_name(name)
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


# ---- the settings' options -------------------------------------------------------------------
#: Where the setting options of a command keep what was given, in ``ctx.meta``.
_GIVEN = "cloacina.settings.given"


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # Options hand their text to Settings unparsed: one parser and one set of checks (and
    # messages) for options, environment variables and keywords alike.
    if value is not None and param.name is not None:
        ctx.meta.setdefault(_GIVEN, {})[param.name] = value


def _setting_help(name: str) -> str:
    extra = f" (also {', '.join(spec(name).aliases)})" if spec(name).aliases else ""
    return f"{spec(name).help}{extra} [default: {default_display(name)}] [env: {env_var(name)}]"


def settings_options(func: F) -> F:
    """One option per :class:`~cloacina.settings.Settings` field (``--max-concurrent-tasks``,
    ``--poll-interval``, ...), generated from the fields; read them with
    :func:`resolve_settings`. Durations take a unit: 500ms, 30s, 5m, 2h, 30d."""
    for name in reversed(setting_names()):
        func = click.option(
            option_flag(name),
            *spec(name).aliases,
            name,
            default=None,
            expose_value=False,
            callback=_remember,
            metavar="DURATION" if spec(name).kind == "duration" else "N",
            help=_setting_help(name),
        )(func)
    return func


def resolve_settings(ctx: click.Context) -> Settings:
    """The settings of a command: its options, then ``CLOACINA_*`` variables, then the
    defaults; a bad value is a usage error naming the option or variable."""
    try:
        return Settings.resolve(ctx.meta.get(_GIVEN, {}), source=option_source)
    except SettingsError as exc:
        raise CliError(str(exc)) from None
