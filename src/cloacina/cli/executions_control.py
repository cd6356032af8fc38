"""``cloacina executions cancel|pause|resume``: controlling a run from the command line,
through a runner that executes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from rich.text import Text

from cloacina.cli.actor import acts_locally
from cloacina.cli.consoles import out_console
from cloacina.cli.databases import open_existing_runner
from cloacina.cli.errors import print_error
from cloacina.cli.execution_lookup import SHORT_ID, resolve_execution
from cloacina.cli.formatting import escape_controls
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.remote import open_client, server_options
from cloacina.errors import ExecutionNotFoundError, InvalidStateError
from cloacina.model.status import WorkflowResult
from cloacina.runner import DefaultRunner

if TYPE_CHECKING:
    from cloacina.cli.remote import Service


# ---- cancel / pause / resume -----------------------------------------------------------------
def _target(
    ctx: click.Context, db: str | None, tenant: str | None, ident: str
) -> tuple[Service, WorkflowResult]:
    """The run ``ident`` names (a unique prefix will do), and what acts on it: the
    --server's client, or a submit-only runner on the database."""
    client = open_client(ctx, tenant)
    if client is not None:
        try:
            return client, resolve_execution(client, ident)
        except BaseException:
            client.close()
            raise
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    # Read-only first: a clear error for a missing database or an old schema.
    with open_existing_runner(url, tenant_name) as reader:
        found = resolve_execution(reader, ident)
    return DefaultRunner(url, tenant=tenant_name, execute_tasks=False), found


def _control(
    ctx: click.Context,
    db: str | None,
    tenant: str | None,
    ident: str,
    act: Callable[[Service, str], None],
    done: str,
) -> None:
    """Call ``act`` on the run ``ident`` names, print ``done`` (formatted with the run). A
    run in the wrong state for it, or gone meanwhile, is the runner's message on stderr and
    exit code 1."""
    runner, found = _target(ctx, db, tenant, ident)
    eid = found.execution_id
    try:
        act(runner, eid)
    except (InvalidStateError, ExecutionNotFoundError) as exc:
        print_error(str(exc))
        ctx.exit(1)
    finally:
        runner.shutdown()
    message = done.format(id=eid, short=eid[:SHORT_ID], workflow=found.workflow_name)
    out_console().print(Text(escape_controls(message)), soft_wrap=True)


@click.command("cancel")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@server_options
@click.option(
    "--reason",
    metavar="TEXT",
    help="Why: stored as the run's error (default: 'cancelled by request').",
)
@click.pass_context
@acts_locally
def cancel_command(
    ctx: click.Context, execution_id: str, db: str | None, tenant: str | None, reason: str | None
) -> None:
    """Cancel a running or paused workflow execution: tasks not started are skipped, running
    ones are stopped (async, command and package tasks) or their results discarded.

    ID may be a unique prefix of the execution id. Exit code 1 when the run had already
    ended. Clears a run whose worker is gone or that no worker can run.
    """
    _control(
        ctx,
        db,
        tenant,
        execution_id,
        lambda runner, eid: runner.cancel(eid, reason=reason),
        "Cancelled workflow execution {id} ({workflow}).",
    )


@click.command("pause")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def pause_command(
    ctx: click.Context, execution_id: str, db: str | None, tenant: str | None
) -> None:
    """Pause a running workflow execution: no new task of it starts, running ones finish.

    ID may be a unique prefix of the execution id. Exit code 1 when the run is not running.
    """
    _control(
        ctx,
        db,
        tenant,
        execution_id,
        lambda runner, eid: runner.pause(eid),
        "Paused workflow execution {id} ({workflow}); its running tasks finish, no new one "
        "starts. Resume it with: cloacina executions resume {short}",
    )


@click.command("resume")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def resume_command(
    ctx: click.Context, execution_id: str, db: str | None, tenant: str | None
) -> None:
    """Resume a paused workflow execution.

    ID may be a unique prefix of the execution id. Exit code 1 when the run is not paused.
    """
    _control(
        ctx,
        db,
        tenant,
        execution_id,
        lambda runner, eid: runner.resume(eid),
        "Resumed workflow execution {id} ({workflow}).",
    )
