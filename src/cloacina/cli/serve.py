"""``cloacina serve``: the HTTP API (DESIGN §9), and by default a worker in the same process.

A thin wrapper over :func:`cloacina.server.serve.serve`: it reads the options and settings,
sets up logging, imports the modules that define embedded workflows, and prints one line
when the server is about to listen. It refuses to start (exit status 2, before listening)
while the database holds no active API key, unless ``--no-auth`` (loopback addresses only).
"""

from __future__ import annotations

import sys

import click

from cloacina.cli.databases import display_url, require_tenant
from cloacina.cli.errors import CliError
from cloacina.cli.options import (
    db_option,
    resolve_db,
    resolve_settings,
    resolve_tenant,
    settings_options,
    tenant_option,
)
from cloacina.cli.run import import_modules
from cloacina.cli.worker import LOG_LEVELS, setup_logging


@click.command("serve")
@db_option
@tenant_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--no-execute",
    is_flag=True,
    help="Serve the API only; `cloacina worker` processes run the tasks (PostgreSQL).",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="No API keys: every request acts as an admin. Loopback addresses only.",
)
@click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    metavar="MOD",
    help="Module that defines embedded workflows (a dotted name or a .py file). Repeatable.",
)
@settings_options
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Log records of this level and above (on stderr).",
)
@click.pass_context
def serve_command(
    ctx: click.Context,
    db: str | None,
    tenant: str | None,
    host: str,
    port: int,
    no_execute: bool,
    no_auth: bool,
    modules: tuple[str, ...],
    log_level: str,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) until SIGTERM or Ctrl-C.

    By default the server also executes tasks, so one command gives a whole working system
    on SQLite; --no-execute serves the API only, beside `cloacina worker` processes.
    Requests authenticate with `Authorization: Bearer <key>`: make the first key with
    `cloacina api-keys create --name NAME --role admin`. On SIGTERM it stops accepting,
    finishes the requests in flight, lets running tasks finish within --shutdown-grace and
    exits 0.
    """
    try:
        from cloacina.server.serve import ServeRefused, serve
        from cloacina.server.state import ServerOptions
    except ImportError as exc:
        raise CliError(
            f"cloacina serve needs the server extra ({exc.name} is missing): "
            "pip install 'cloacina[server]'"
        ) from None

    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    settings = resolve_settings(ctx)
    setup_logging(log_level)
    import_modules(modules)
    require_tenant(url, tenant_name)
    options = ServerOptions(
        url=url,
        tenant=tenant_name,
        execute=not no_execute,
        auth=not no_auth,
        settings=settings,
    )

    def ready(_state: object) -> None:
        mode = "API only" if no_execute else "executing tasks"
        click.echo(
            f"cloacina serve: http://{host}:{port} (web UI at /, API docs at /docs), database "
            f"{display_url(url)}, tenant {tenant_name}, {mode}"
        )
        sys.stdout.flush()

    try:
        code = serve(options, host, port, log_level=log_level, on_ready=ready)
    except ServeRefused as exc:
        raise CliError(str(exc)) from None
    ctx.exit(code)


__all__ = ["serve_command"]
