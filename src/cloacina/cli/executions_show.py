"""``cloacina executions show``: one workflow run, its tasks and (on request) its events and
context."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.markup import escape

from cloacina.cli.consoles import out_console
from cloacina.cli.execution_lookup import resolve_execution
from cloacina.cli.json_output import echo_json, result_json
from cloacina.cli.options import db_option, tenant_option
from cloacina.cli.remote import open_service, server_options
from cloacina.cli.render import (
    render_context,
    render_events,
    render_header,
    render_tasks,
    render_tracebacks,
)
from cloacina.cli.render_attempts import attempts_json, render_attempts, retried_tasks
from cloacina.model.status import WorkflowResult

if TYPE_CHECKING:
    from cloacina.cli.remote import Service


def package_version_of(runner: Service, result: WorkflowResult) -> str | None:
    """The version of the registered package a run's workflow version belongs to (None for
    an embedded workflow, or a package unregistered since)."""
    if result.package == "embedded":
        return None
    for info in runner.list_packages():
        key = (result.workflow_name, result.workflow_version)
        if info.package == result.package and key in info.workflow_versions:
            return info.version
    return None


@click.command("show")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@server_options
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
    with open_service(ctx, db, tenant) as runner:
        result = resolve_execution(runner, execution_id)
        event_rows = runner.get_events(result.execution_id) if events else None
        package_version = package_version_of(runner, result)
        # Every attempt of the tasks that ran more than once (retries, reruns).
        retried = retried_tasks(result)
        attempts = runner.get_attempts(result.execution_id) if retried else []
        # Sub-workflows: the child runs, each as a list shows it.
        children = [runner.get_execution(c) for c in result.children]
    max_attempts = {tid: t.max_attempts or 1 for tid, t in result.tasks.items()}
    input_context = result.input_context or {}
    if as_json:
        data = result_json(result, max_attempts, event_rows)
        data["package_version"] = package_version
        data["input_context"] = input_context
        if attempts:
            data["attempts"] = attempts_json(attempts)
        data["children"] = list(result.children)
        data["parent_execution_id"] = result.parent_execution_id
        data["parent_task_id"] = result.parent_task_id
        echo_json(data)
        return
    console = out_console()
    render_header(console, result, package_version)
    if result.parent_execution_id is not None:
        console.print(
            f"parent     {escape(result.parent_execution_id)}"
            f" (task {escape(result.parent_task_id or '?')})",
            highlight=False,
        )
    console.print()
    render_tasks(console, result, max_attempts, recoveries=True)
    if attempts:
        console.print()
        render_attempts(console, attempts, retried)
    if children:
        console.print()
        console.print("Child runs (sub-workflows):", highlight=False)
        for child in children:
            console.print(
                f"  {child.execution_id}  {escape(child.workflow_name)}  {child.status}",
                highlight=False,
            )
    render_tracebacks(console, result)
    if event_rows is not None:
        console.print()
        render_events(console, event_rows, result.started_at)
    if with_context:
        console.print()
        render_context(console, "Input context", input_context)
        render_context(console, "Final context", result.final_context)
