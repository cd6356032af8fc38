"""``cloacina worker``: a long-running process that executes tasks until SIGTERM/SIGINT.

A thin wrapper over :func:`cloacina.worker.serve`: it reads the settings (options generated
from :class:`~cloacina.settings.Settings`, then ``CLOACINA_*`` variables), sets up logging on
stderr, imports the modules that define embedded workflows, and prints one startup line with
the worker's id. Registered packages of the worker's tenant are loaded from the database.
"""

from __future__ import annotations

import logging
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
from cloacina.observability import SERVER_EXTRA, metrics_available
from cloacina.runner import DefaultRunner
from cloacina.service.metrics import MetricsServer

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


def setup_logging(level: str) -> None:
    """Log Cloacina's records of ``level`` and above to stderr (other libraries' from
    ``warning`` up): ``2024-05-01 12:00:00,123 INFO    worker ... running``."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, stream=sys.stderr, force=True)
    logging.getLogger("cloacina").setLevel(getattr(logging, level.upper()))


def _startup_line(runner: DefaultRunner, url: str) -> str:
    workflows = ", ".join(runner.catalog.names()) or "none yet"
    return (
        f"cloacina worker {runner.worker_id} started: database {display_url(url)}, "
        f"tenant {runner.tenant}, up to {runner.settings.max_concurrent_tasks} tasks at once; "
        f"workflows: {workflows}"
    )


@click.command("worker")
@db_option
@tenant_option
@click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    metavar="MOD",
    help="Module that defines embedded workflows: a dotted name (the current directory is on "
    "the path) or a path to a .py file. Repeatable. Registered packages need none.",
)
@settings_options
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    metavar="PORT",
    help="Serve Prometheus metrics over HTTP on this port (0: any free port; the startup "
    "line names it). Needs the server extra: pip install 'cloacina[server]'.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="Address the metrics endpoint listens on (0.0.0.0: every interface).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Log records of this level and above (on stderr).",
)
@click.pass_context
def worker_command(
    ctx: click.Context,
    db: str | None,
    tenant: str | None,
    modules: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
) -> None:
    """Execute tasks from the database until stopped (SIGTERM or Ctrl-C).

    Runs the tasks of every registered package of the tenant, and of the embedded workflows
    that --module defines, alongside any number of other workers on the same database.
    On SIGTERM/SIGINT it stops claiming tasks, lets running ones finish within
    --shutdown-grace, hands back those that do not (another worker picks them up at once),
    marks itself stopped and exits 0. Every setting may also come from its CLOACINA_*
    variable (`cloacina config show` lists them). Durations take a unit: 500ms, 30s, 5m,
    2h, 30d (plain: seconds).
    """
    from cloacina.worker import serve

    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    settings = resolve_settings(ctx)
    setup_logging(log_level)
    import_modules(modules)
    require_tenant(url, tenant_name)
    if metrics_port is not None and not metrics_available():
        raise CliError(f"--metrics-port needs the prometheus-client library: {SERVER_EXTRA}")
    endpoints: list[MetricsServer] = []

    def ready(runner: DefaultRunner) -> None:
        line = _startup_line(runner, url)
        if metrics_port is not None:
            try:
                endpoint = runner.serve_metrics(metrics_port, metrics_host)
            except OSError as exc:
                raise CliError(
                    f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror or exc}"
                    "; choose another --metrics-port"
                ) from None
            endpoints.append(endpoint)
            line += f"; metrics at http://{metrics_host}:{endpoint.port}/metrics"
        click.echo(line)
        sys.stdout.flush()

    try:
        code = serve(url, tenant=tenant_name, on_ready=ready, settings=settings)
    finally:
        for endpoint in endpoints:
            endpoint.close()
    logging.getLogger("cloacina.worker").info("worker stopped")
    ctx.exit(code)
