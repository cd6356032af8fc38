"""The ``cloacina`` command line (alias ``cloacina-ctl``), built with click and rich.

One module per command group: :mod:`~cloacina.cli.run`, :mod:`~cloacina.cli.executions`,
:mod:`~cloacina.cli.workflows`, :mod:`~cloacina.cli.worker`, :mod:`~cloacina.cli.workers`,
:mod:`~cloacina.cli.tenant`, :mod:`~cloacina.cli.db`, :mod:`~cloacina.cli.config`,
:mod:`~cloacina.cli.api_keys`, :mod:`~cloacina.cli.audit`, :mod:`~cloacina.cli.triggers`,
:mod:`~cloacina.cli.schedules`
and :mod:`~cloacina.cli.demo`.
Commands that change something act as the local OS user (:mod:`~cloacina.cli.actor`), so
the audit log records them. The two largest, :mod:`~cloacina.cli.executions` and
:mod:`~cloacina.cli.package`, only assemble their groups from modules of one idea each
(listing, showing, watching, control; building, inspecting, signing, registering).
The commands are thin: they call :class:`~cloacina.runner.DefaultRunner` and the store's
read methods; they never talk SQL.

What the command groups share lives in modules of its own: :mod:`~cloacina.cli.errors`
(user errors, exit codes), :mod:`~cloacina.cli.consoles` (stdout / stderr consoles),
:mod:`~cloacina.cli.options` (``--db``, ``--tenant``, the settings' options),
:mod:`~cloacina.cli.databases` (reaching that database and its tenants),
:mod:`~cloacina.cli.durations` (``30s``, ``5m``, ...), :mod:`~cloacina.cli.formatting`
(times, durations, statuses),
:mod:`~cloacina.cli.json_output` (``--json``), :mod:`~cloacina.cli.render` (tables of a run)
and :mod:`~cloacina.cli.follow` (printing a run's events as it goes).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from cloacina import __version__
from cloacina.cli.alerts import alerts_group
from cloacina.cli.api_keys import api_keys_group
from cloacina.cli.audit import audit_group
from cloacina.cli.backfills import backfill_command, backfills_group
from cloacina.cli.config import config_group
from cloacina.cli.db import db_group
from cloacina.cli.demo import demo_command
from cloacina.cli.errors import print_error
from cloacina.cli.executions import executions_group
from cloacina.cli.keys import keys_group
from cloacina.cli.options import DB_ENV, DEFAULT_DB, DEFAULT_TENANT, TENANT_ENV
from cloacina.cli.package import package_group
from cloacina.cli.remote import API_KEY_ENV, SERVER_ENV
from cloacina.cli.run import run_command
from cloacina.cli.schedules import schedules_group
from cloacina.cli.serve import serve_command
from cloacina.cli.tenant import tenant_group
from cloacina.cli.triggers import triggers_group
from cloacina.cli.worker import worker_command
from cloacina.cli.workers import workers_group
from cloacina.cli.workflows import workflows_group
from cloacina.errors import CloacinaError

PROG_NAMES = ("cloacina", "cloacina-ctl")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db",
    envvar=DB_ENV,
    default=DEFAULT_DB,
    show_default=True,
    show_envvar=True,
    metavar="URL",
    help="Database URL for every command (a command's own --db wins).",
)
@click.option(
    "--tenant",
    "tenant",
    envvar=TENANT_ENV,
    default=DEFAULT_TENANT,
    show_default=True,
    show_envvar=True,
    metavar="NAME",
    help="Tenant for every command (a command's own --tenant wins).",
)
@click.option(
    "--server",
    "server",
    default=None,
    metavar="URL",
    help=f"Work through the Cloacina server at URL instead of --db, for the commands that "
    f"can (a command's own --server wins) [default: ${SERVER_ENV}].",
)
@click.option(
    "--api-key",
    "api_key",
    default=None,
    metavar="KEY",
    help=f"API key for --server [default: ${API_KEY_ENV}].",
)
@click.version_option(__version__, "--version", "-V", prog_name="cloacina")
@click.pass_context
def cli(ctx: click.Context, db: str, tenant: str, server: str | None, api_key: str | None) -> None:
    """Cloacina: durable workflows on SQLite (the default, a file) or PostgreSQL (--db
    postgresql://..., shared by any number of workers).

    Run a workflow with `cloacina run WORKFLOW --module MOD` (a registered package's workflow
    needs no --module), inspect past runs with
    `cloacina executions list|show|watch`, draw a workflow with `cloacina workflows graph`,
    or see everything at work with `cloacina demo`.
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    ctx.obj["tenant"] = tenant
    ctx.obj["server"] = server
    ctx.obj["api_key"] = api_key


cli.add_command(run_command)
cli.add_command(executions_group)
cli.add_command(workflows_group)
cli.add_command(db_group)
cli.add_command(demo_command)
cli.add_command(package_group)
cli.add_command(keys_group)
cli.add_command(worker_command)
cli.add_command(serve_command)
cli.add_command(workers_group)
cli.add_command(tenant_group)
cli.add_command(config_group)
cli.add_command(api_keys_group)
cli.add_command(audit_group)
cli.add_command(alerts_group)
cli.add_command(backfill_command)
cli.add_command(backfills_group)
cli.add_command(triggers_group)
cli.add_command(schedules_group)


def _prog_name() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name in PROG_NAMES else "cloacina"


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``cloacina`` and ``cloacina-ctl`` console scripts."""
    try:
        cli.main(args=args, prog_name=_prog_name(), standalone_mode=True)
    except CloacinaError as exc:
        print_error(str(exc))
        sys.exit(2)


__all__ = ["cli", "main"]
