"""``cloacina executions show``: one workflow run, its tasks and (on request) its events and
context."""

from __future__ import annotations

import click

from cloacina.cli.consoles import out_console
from cloacina.cli.databases import open_existing_store
from cloacina.cli.execution_lookup import resolve_execution
from cloacina.cli.json_output import echo_json, result_json
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.render import (
    render_context,
    render_events,
    render_header,
    render_tasks,
    render_tracebacks,
)
from cloacina.cli.workflows import open_registry
from cloacina.model.context import loads_context
from cloacina.model.status import WorkflowResult
from cloacina.service.executions import build_result


def _package_version(url: str, tenant: str, result: WorkflowResult) -> str | None:
    """The version of the registered package a run's workflow version belongs to (None for
    an embedded workflow, or a package unregistered since)."""
    if result.package == "embedded":
        return None
    with open_registry(url, tenant) as runner:
        for info in runner.list_packages() if runner is not None else []:
            key = (result.workflow_name, result.workflow_version)
            if info.package == result.package and key in info.workflow_versions:
                return info.version
    return None


@click.command("show")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@click.option("--events", is_flag=True, help="Also show the run's event log.")
@click.option("--context", "with_context", is_flag=True, help="Also show input and final context.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.pass_context
def show_command(
    ctx: click.Context,
    execution_id: str,
    db: str | None,
    tenant: str | None,
    events: bool,
    with_context: bool,
    as_json: bool,
) -> None:
    """Show one workflow execution: its status, tasks and (with --events) its events.

    ID may be a unique prefix of the execution id, such as the 8 characters that
    `executions list` shows.
    """
    url = resolve_db(ctx, db)
    store = open_existing_store(url, resolve_tenant(ctx, tenant))
    try:
        row = resolve_execution(store, execution_id)
        task_rows = store.get_tasks(row.id)
        event_rows = store.get_events(row.id) if events else None
    finally:
        store.close()
    result = build_result(row, task_rows)
    package_version = _package_version(url, resolve_tenant(ctx, tenant), result)
    max_attempts = {t.task_id: t.max_attempts for t in task_rows}
    input_context = loads_context(row.input_context)
    if as_json:
        data = result_json(result, max_attempts, event_rows)
        data["package_version"] = package_version
        data["input_context"] = input_context
        echo_json(data)
        return
    console = out_console()
    render_header(console, result, package_version)
    console.print()
    render_tasks(console, result, max_attempts, recoveries=True)
    render_tracebacks(console, result)
    if event_rows is not None:
        console.print()
        render_events(console, event_rows, row.started_at)
    if with_context:
        console.print()
        render_context(console, "Input context", input_context)
        render_context(console, "Final context", result.final_context)
