"""``cloacina executions rerun|rerun-failed``: run again the failed part of runs that ended
(DESIGN §11), on the database or through a server (``--server``)."""

from __future__ import annotations

import click
from rich.text import Text

from cloacina.cli.actor import acts_locally
from cloacina.cli.consoles import out_console
from cloacina.cli.databases import open_existing_runner
from cloacina.cli.durations import DURATION
from cloacina.cli.errors import print_error
from cloacina.cli.execution_lookup import SHORT_ID
from cloacina.cli.executions_control import _target
from cloacina.cli.formatting import escape_controls
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.remote import open_client, server_options
from cloacina.cli.run import import_modules, parse_context
from cloacina.errors import (
    ExecutionNotFoundError,
    InvalidStateError,
    TaskNotFoundError,
    WorkflowNotFoundError,
)
from cloacina.runner import DefaultRunner

_MODULE_HELP = (
    "Module that defines the workflow (a dotted name or a .py file; repeatable), so that "
    "this process can judge its trigger rules; a registered package's needs none."
)


def _say(message: str) -> None:
    out_console().print(Text(escape_controls(message)), soft_wrap=True)


@click.command("rerun")
@click.argument("execution_id", metavar="ID")
@click.option(
    "--task",
    "tasks",
    multiple=True,
    metavar="TASK",
    help="A task to run again (repeatable) [default: every failed task, and those a cancel "
    "stopped].",
)
@click.option(
    "--no-downstream",
    "no_downstream",
    is_flag=True,
    help="Only the tasks named, not their dependents.",
)
@click.option(
    "--context",
    "context",
    metavar="JSON",
    help="A JSON object deep-merged over the input of the rerun's first tasks.",
)
@click.option(
    "--version",
    "version",
    metavar="VERSION",
    help="Move the run to this registered version of its workflow (a workflow version, a "
    "unique prefix of one, or its package's version).",
)
@click.option("--module", "-m", "modules", multiple=True, metavar="MOD", help=_MODULE_HELP)
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def rerun_command(
    ctx: click.Context,
    execution_id: str,
    tasks: tuple[str, ...],
    no_downstream: bool,
    context: str | None,
    version: str | None,
    modules: tuple[str, ...],
    db: str | None,
    tenant: str | None,
) -> None:
    """Run again tasks of a run that ended (failed, cancelled or completed): completed
    upstream tasks keep their outputs and do not run again, attempt numbers continue, and
    the run is running again when this returns (follow it with `cloacina executions watch`).

    ID may be a unique prefix of the execution id. Exit code 1 when the run has not ended,
    has nothing to rerun, or has no such task or version.
    """
    patch = parse_context(context, "--context") if context is not None else None
    import_modules(modules)
    service, found = _target(ctx, db, tenant, execution_id)
    eid = found.execution_id
    try:
        service.rerun(
            eid,
            list(tasks) or None,
            downstream=not no_downstream,
            context=patch,
            version=version,
        )
    except (
        InvalidStateError,
        ExecutionNotFoundError,
        TaskNotFoundError,
        WorkflowNotFoundError,
    ) as exc:
        print_error(str(exc))
        ctx.exit(1)
    finally:
        service.shutdown()
    what = ", ".join(tasks) if tasks else "its failed tasks"
    if tasks and not no_downstream:
        what += " and their dependents"
    _say(
        f"Rerunning {what} of workflow execution {eid} ({found.workflow_name}). Follow it "
        f"with: cloacina executions watch {eid[:SHORT_ID]}"
    )


@click.command("rerun-failed")
@click.option("--workflow", "workflow", metavar="NAME", help="Only this workflow's runs.")
@click.option(
    "--since",
    "since",
    type=DURATION,
    metavar="DURATION",
    help="Only runs started within DURATION (e.g. 1d, 6h) [default: any time].",
)
@click.option("--module", "-m", "modules", multiple=True, metavar="MOD", help=_MODULE_HELP)
@db_option
@tenant_option
@server_options
@click.pass_context
@acts_locally
def rerun_failed_command(
    ctx: click.Context,
    workflow: str | None,
    since: float | None,
    modules: tuple[str, ...],
    db: str | None,
    tenant: str | None,
) -> None:
    """Rerun the failed tasks (and their dependents) of every failed run of a workflow,
    oldest first; prints the ids rerun."""
    from datetime import timedelta

    import_modules(modules)
    ago = None if since is None else timedelta(seconds=since)
    client = open_client(ctx, tenant)
    if client is not None:
        with client:
            ids = client.rerun_failed(workflow, ago)
    else:
        url = resolve_db(ctx, db)
        tenant_name = resolve_tenant(ctx, tenant)
        with open_existing_runner(url, tenant_name):
            pass  # a clear error for a missing database or an old schema
        with DefaultRunner(url, tenant=tenant_name, execute_tasks=False) as runner:
            ids = runner.rerun_failed(workflow, ago)
    for eid in ids:
        _say(eid)
    scope = f" of {workflow}" if workflow else ""
    click.echo(f"Rerunning {len(ids)} failed run(s){scope}.", err=True)


__all__ = ["rerun_command", "rerun_failed_command"]
