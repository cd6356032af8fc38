"""``cloacina executions logs``: what a run's tasks printed and logged, whole or as it comes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cloacina.cli.errors import CliError
from cloacina.cli.execution_lookup import resolve_execution
from cloacina.cli.options import db_option, tenant_option
from cloacina.cli.remote import is_remote, open_service, server_options
from cloacina.errors import NotFoundError
from cloacina.runner import DefaultRunner

if TYPE_CHECKING:
    from cloacina.cli.remote import Service


def header(task_id: str, attempt: int) -> str:
    """The line above a task's output (as ``tail`` heads each file)."""
    return f"==> {task_id} (attempt {attempt}) <=="


def _out(text: str) -> None:
    # Plain text, never through rich: a task's output is shown as it was written.
    click.echo(text, nl=False)


def _show_all(runner: Service, execution_id: str) -> None:
    logs = runner.get_execution_logs(execution_id)
    if not logs:
        click.echo("no task of this run has started yet", err=True)
    for i, log in enumerate(logs):
        _out(("\n" if i else "") + header(log.task_id, log.attempt) + "\n")
        text = log.text or "(no output)\n"
        _out(text if text.endswith("\n") else text + "\n")


def _follow_all(runner: DefaultRunner, execution_id: str) -> None:
    current: tuple[str, int] | None = None
    ended_line = True
    for chunk in runner.follow_execution_logs(execution_id):
        key = (chunk.task_id, chunk.attempt)
        if key != current:
            lead = "" if current is None else ("\n" if ended_line else "\n\n")
            _out(lead + header(*key) + "\n")
            current = key
        _out(chunk.text)
        ended_line = chunk.text.endswith("\n")


@click.command("logs")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@server_options
@click.option("--task", "task_id", metavar="TASK", help="Only this task's output.")
@click.option(
    "--attempt",
    type=click.IntRange(min=1),
    help="Which attempt of --task (1 is the first run); the latest by default.",
)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing output as it is written: until the attempt ends (with --task), "
    "else until the run ends.",
)
@click.pass_context
def logs_command(
    ctx: click.Context,
    execution_id: str,
    db: str | None,
    tenant: str | None,
    task_id: str | None,
    attempt: int | None,
    follow: bool,
) -> None:
    """Print what the tasks of a workflow execution printed and logged (stdout, stderr and
    logging records), each attempt kept apart.

    Without --task, every task's latest attempt under a header; with --follow, every
    attempt's output as it comes, under a header whenever the task changes. ID may be a
    unique prefix of the execution id.
    """
    if attempt is not None and task_id is None:
        raise click.UsageError("--attempt needs --task: an attempt is one task's")
    with open_service(ctx, db, tenant) as runner:
        eid = resolve_execution(runner, execution_id).execution_id
        try:
            if task_id is None and follow:
                if is_remote(runner):
                    raise CliError(
                        "--follow without --task reads the database (--db); through --server, "
                        "follow one task's output: add --task TASK"
                    )
                assert isinstance(runner, DefaultRunner)
                _follow_all(runner, eid)
            elif task_id is None:
                _show_all(runner, eid)
            elif follow:
                for text in runner.follow_task_logs(eid, task_id, attempt):
                    _out(text)
            else:
                _out(runner.get_task_logs(eid, task_id, attempt))
        except NotFoundError as exc:
            raise CliError(str(exc)) from None
