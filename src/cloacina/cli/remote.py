"""``--server URL`` and ``--api-key``: the one place a command gets what it calls, a
``DefaultRunner`` on the database (``--db``) or a :class:`cloacina.Client` of a server.

A command that can work through a server takes :func:`server_options` and opens its
service with :func:`open_service`; both kinds answer the same methods with the same values,
so the command's body does not care which it has. The server comes from the command's
``--server``, else the group's (``cloacina --server URL ...``), else ``$CLOACINA_SERVER``;
the key from ``--api-key``, else the group's, else ``$CLOACINA_API_KEY`` (best: an option
on the command line is visible to other users of the machine). ``--tenant`` picks the
tenant on the server (a key bound to one tenant acts in it without it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import click

from cloacina.cli.databases import open_existing_runner
from cloacina.cli.errors import CliError
from cloacina.cli.options import resolve_db, resolve_tenant
from cloacina.runner import DefaultRunner

if TYPE_CHECKING:
    from cloacina.client import Client

    #: What a command calls: the database's runner, or a server's client.
    Service: TypeAlias = DefaultRunner | Client

F = TypeVar("F", bound=Callable[..., Any])

SERVER_ENV = "CLOACINA_SERVER"
API_KEY_ENV = "CLOACINA_API_KEY"

#: Where the options keep what was given, in ``ctx.meta``.
_GIVEN = "cloacina.remote.given"


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None and param.name is not None:
        ctx.meta.setdefault(_GIVEN, {})[param.name] = value


def server_options(func: F) -> F:
    """``--server URL`` and ``--api-key KEY`` on a command (read with :func:`remote_target`;
    the command's signature is unchanged)."""
    func = click.option(
        "--api-key",
        "api_key",
        default=None,
        expose_value=False,
        callback=_remember,
        metavar="KEY",
        help=f"API key for --server [default: ${API_KEY_ENV}].",
    )(func)
    return click.option(
        "--server",
        "server",
        default=None,
        expose_value=False,
        callback=_remember,
        metavar="URL",
        help=f"Work through the Cloacina server at URL (e.g. http://host:8080) instead of "
        f"--db [default: ${SERVER_ENV}].",
    )(func)


def _given(ctx: click.Context, name: str) -> str | None:
    value = ctx.meta.get(_GIVEN, {}).get(name)
    if isinstance(value, str) and value:
        return value
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    group = obj.get(name)
    return group if isinstance(group, str) and group else None


def remote_target(ctx: click.Context) -> tuple[str, str | None] | None:
    """``(server URL, API key)`` when the command works through a server, else ``None``."""
    server = _given(ctx, "server") or os.environ.get(SERVER_ENV) or None
    if server is None:
        return None
    if not server.startswith(("http://", "https://")):
        raise CliError(f"--server {server!r} is not an http:// or https:// URL")
    key = _given(ctx, "api_key") or os.environ.get(API_KEY_ENV) or None
    if key is None:
        raise CliError(
            f"--server needs an API key: pass --api-key or set ${API_KEY_ENV} (an admin "
            "makes keys with `cloacina api-keys create`)"
        )
    return server, key


def _asked_tenant(ctx: click.Context, tenant: str | None) -> str | None:
    """The tenant the user named (the command's --tenant, the group's, $CLOACINA_TENANT),
    or ``None`` when none was: a key bound to a tenant then acts in its own."""
    if tenant:
        return resolve_tenant(ctx, tenant)
    source = ctx.find_root().get_parameter_source("tenant")
    if source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT):
        return resolve_tenant(ctx, None)
    return None


def open_client(ctx: click.Context, tenant: str | None) -> Client | None:
    """A client of the server the command was pointed at, or ``None`` without one."""
    target = remote_target(ctx)
    if target is None:
        return None
    from cloacina.client import Client

    server, key = target
    return Client(server, api_key=key, tenant=_asked_tenant(ctx, tenant))


def open_service(
    ctx: click.Context, db: str | None, tenant: str | None, *, read_only: bool = True
) -> Service:
    """What the command calls: a client of ``--server``, else a runner that executes
    nothing on the existing database of ``--db`` (read-only unless ``read_only=False``)."""
    client = open_client(ctx, tenant)
    if client is not None:
        return client
    return open_existing_runner(
        resolve_db(ctx, db), resolve_tenant(ctx, tenant), read_only=read_only
    )


def is_remote(service: Service) -> bool:
    return not isinstance(service, DefaultRunner)


def where_of(ctx: click.Context, db: str | None, tenant: str | None) -> str:
    """Where a command looks, for its messages: the server (and the tenant named), else the
    database without its password (and the tenant unless it is ``public``)."""
    target = remote_target(ctx)
    if target is not None:
        asked = _asked_tenant(ctx, tenant)
        return target[0] + ("" if asked is None else f" (tenant {asked})")
    from cloacina.cli.execution_lookup import where

    return where(resolve_db(ctx, db), resolve_tenant(ctx, tenant))


__all__ = [
    "API_KEY_ENV",
    "SERVER_ENV",
    "is_remote",
    "open_client",
    "open_service",
    "remote_target",
    "server_options",
    "where_of",
]
