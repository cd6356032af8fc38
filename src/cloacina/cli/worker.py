"""``cloacina worker``: a long-running process that executes tasks until SIGTERM/SIGINT.

A thin wrapper over :func:`cloacina.worker.serve`: it parses the settings, sets up logging on
stderr, imports the modules that define embedded workflows, and prints one startup line with
the worker's id. Registered packages of the worker's tenant are loaded from the database.
"""

from __future__ import annotations

import inspect
import logging
import sys
from typing import Any

import click

from cloacina.cli.databases import display_url, require_tenant
from cloacina.cli.durations import DURATION
from cloacina.cli.errors import CliError
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.run import import_modules
from cloacina.runner import DefaultRunner

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
        f"cloacina worker {runner.runner_id} started: database {display_url(url)}, "
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
@click.option(
    "--max-concurrent-tasks",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="How many tasks this worker runs at once [default: 8].",
)
@click.option(
    "--poll-interval",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="How often to look for ready work when not woken [default: 0.5s].",
)
@click.option(
    "--heartbeat-interval",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="How often running tasks and the worker report they are alive [default: 1s].",
)
@click.option(
    "--stale-claim-threshold",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="A task whose heartbeat is older than this is taken back and run again [default: 5s].",
)
@click.option(
    "--grace",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="On SIGTERM/SIGINT, how long running tasks may take to finish before they are "
    "handed back to other workers [default: 30s].",
)
@click.option(
    "--retention",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="Prune finished runs older than this, e.g. 30d [default: keep them].",
)
@click.option(
    "--pool-size",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="PostgreSQL: database connections this worker keeps open [default: 10].",
)
@click.option(
    "--max-overflow",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="PostgreSQL: extra connections opened beyond --pool-size under load, closed when "
    "returned [default: 20].",
)
@click.option(
    "--pool-timeout",
    type=DURATION,
    default=None,
    metavar="DURATION",
    help="PostgreSQL: how long to wait for a free connection when all are in use [default: 30s].",
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
    max_concurrent_tasks: int | None,
    poll_interval: float | None,
    heartbeat_interval: float | None,
    stale_claim_threshold: float | None,
    grace: float | None,
    retention: float | None,
    pool_size: int | None,
    max_overflow: int | None,
    pool_timeout: float | None,
    log_level: str,
) -> None:
    """Execute tasks from the database until stopped (SIGTERM or Ctrl-C).

    Runs the tasks of every registered package of the tenant, and of the embedded workflows
    that --module defines, alongside any number of other workers on the same database.
    On SIGTERM/SIGINT it stops claiming tasks, lets running ones finish within --grace,
    hands back those that do not (another worker picks them up at once), marks itself
    stopped and exits 0. Durations take a unit: 500ms, 30s, 5m, 2h, 30d (plain: seconds).
    """
    from cloacina.worker import serve

    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    settings: dict[str, Any] = {
        key: value
        for key, value in (
            ("max_concurrent_tasks", max_concurrent_tasks),
            ("poll_interval", poll_interval),
            ("heartbeat_interval", heartbeat_interval),
            ("stale_claim_threshold", stale_claim_threshold),
            ("shutdown_grace", grace),
            ("retention", retention),
            ("pool_size", pool_size),
            ("max_overflow", max_overflow),
            ("pool_timeout", pool_timeout),
        )
        if value is not None
    }
    check_settings(settings)
    setup_logging(log_level)
    import_modules(modules)
    require_tenant(url, tenant_name)

    def ready(runner: DefaultRunner) -> None:
        click.echo(_startup_line(runner, url))
        sys.stdout.flush()

    code = serve(url, tenant=tenant_name, on_ready=ready, **settings)
    logging.getLogger("cloacina.worker").info("worker stopped")
    ctx.exit(code)


def check_settings(settings: dict[str, Any]) -> None:
    """Usage errors for settings that DefaultRunner would refuse (its defaults fill in)."""
    defaults = {
        name: param.default
        for name, param in inspect.signature(DefaultRunner.__init__).parameters.items()
    }
    for key in ("poll_interval", "heartbeat_interval", "retention", "pool_timeout"):
        if key in settings and settings[key] <= 0:
            raise CliError(f"--{key.replace('_', '-')} must be longer than 0s")
    heartbeat = settings.get("heartbeat_interval", defaults["heartbeat_interval"])
    stale = settings.get("stale_claim_threshold", defaults["stale_claim_threshold"])
    if stale <= heartbeat:
        raise CliError(
            f"--stale-claim-threshold ({stale:g}s) must be longer than --heartbeat-interval "
            f"({heartbeat:g}s), or live tasks would be taken back from a healthy worker"
        )
