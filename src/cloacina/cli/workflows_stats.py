"""``cloacina workflows stats NAME``: where a workflow's time goes over its recent runs.

Per task the p50/p95 of its attempts' durations and of its queue wait, its failure rate, and
the workflow's critical path (``runner.workflow_stats``; the definitions are in
:mod:`cloacina.service.stats`).
"""

from __future__ import annotations

import click
from rich.text import Text

from cloacina.cli.consoles import fancy, out_console
from cloacina.cli.errors import CliError
from cloacina.cli.formatting import fmt_duration, fmt_time, safe_text
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.remote import open_client, server_options
from cloacina.cli.render import new_table
from cloacina.cli.run import import_modules
from cloacina.errors import RequestError, WorkflowNotFoundError
from cloacina.service.stats import MAX_RUNS, WorkflowStats


@click.command("stats")
@click.argument("name")
@db_option
@tenant_option
@server_options
@click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    metavar="MOD",
    help="Module that defines the workflow (to name an embedded workflow that has not run "
    "yet). Repeatable.",
)
@click.option(
    "--last",
    type=click.IntRange(1, MAX_RUNS),
    default=100,
    show_default=True,
    metavar="N",
    help="Read the N most recent finished (completed or failed) runs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def stats_command(
    ctx: click.Context,
    name: str,
    db: str | None,
    tenant: str | None,
    modules: tuple[str, ...],
    last: int,
    as_json: bool,
) -> None:
    """Statistics of workflow NAME over its recent finished runs: per task the p50 and
    p95 of its duration (every attempt whose body ran) and of its queue wait (from ready:
    its last dependency ended, or the run was created, to its first start), how often it
    failed, and the critical path: the chain of tasks whose ends decided when the run
    ended (the most common one among the runs). Shorten a task on that path and the run
    gets shorter; elsewhere, it does not.
    """
    from cloacina.cli.workflows import open_registry  # the group's module imports this one

    client = open_client(ctx, tenant)
    if client is not None:
        if modules:
            client.close()
            raise CliError("--module names this process's workflows; with --server, the server's")
        with client:
            try:
                stats = client.workflow_stats(name, last)
            except (WorkflowNotFoundError, RequestError) as exc:
                raise CliError(str(exc)) from None
        _show(stats, as_json)
        return
    import_modules(modules)
    with open_registry(resolve_db(ctx, db), resolve_tenant(ctx, tenant)) as runner:
        if runner is None:
            raise CliError(f"no runs of workflow {name!r}: the database has none yet")
        try:
            stats = runner.workflow_stats(name, last)
        except (WorkflowNotFoundError, RequestError) as exc:
            raise CliError(str(exc)) from None
    _show(stats, as_json)


def _show(stats: WorkflowStats, as_json: bool) -> None:
    if as_json:
        echo_json(stats.to_dict())
        return
    render_stats(stats)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def render_stats(stats: WorkflowStats) -> None:
    """The stats as a title line, a table of tasks and the critical path."""
    console = out_console()
    if not stats.runs:
        console.print(
            Text.assemble(
                "no finished runs of workflow ",
                safe_text(stats.workflow_name, "bold"),
                " yet",
            )
        )
        return
    console.print(
        Text.assemble(
            safe_text(stats.workflow_name, "bold"),
            f": {stats.runs} finished runs ({stats.completed} completed, {stats.failed} "
            f"failed, {_pct(stats.failure_rate)})\nrun time p50 "
            f"{fmt_duration(stats.duration_p50)}, p95 {fmt_duration(stats.duration_p95)}\n"
            f"runs created {fmt_time(stats.first_run_at)} to {fmt_time(stats.last_run_at)}",
        )
    )
    table = new_table("Tasks")
    table.add_column("task", overflow="fold", min_width=6)
    for header in ("runs", "failed", "attempts", "p50", "p95", "wait p50", "wait p95", "path"):
        table.add_column(header, justify="right", no_wrap=True)
    for task in stats.tasks:
        table.add_row(
            safe_text(task.task_id),
            str(task.runs),
            _pct(task.failure_rate) if task.failed else "0",
            str(task.attempts),
            fmt_duration(task.duration_p50),
            fmt_duration(task.duration_p95),
            fmt_duration(task.wait_p50),
            fmt_duration(task.wait_p95),
            f"{task.critical_runs}/{stats.runs}",
        )
    console.print(table)
    if not stats.critical_path:
        return
    arrow = " → " if fancy(console) else " -> "
    console.print(
        Text.assemble(
            ("critical path", "bold"),
            f" (in {stats.critical_path_runs} of {stats.runs} runs, its tasks take "
            f"{fmt_duration(stats.critical_path_seconds)}): ",
            safe_text(arrow.join(stats.critical_path)),
        )
    )
