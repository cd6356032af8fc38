"""``cloacina demo``: the seed's data-processing pipeline, step by step."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from cloacina.cli.consoles import fancy, out_console
from cloacina.cli.errors import CliInterrupted, exit_code_for
from cloacina.cli.follow import EventPrinter, follow
from cloacina.cli.formatting import fmt_duration
from cloacina.cli.json_output import print_json_block
from cloacina.cli.render import render_tasks
from cloacina.errors import InvalidStateError
from cloacina.runner import DefaultRunner

DEMO_INPUT: dict[str, Any] = {"requested_by": "cloacina demo"}


def _step(console: Console, number: int, title: str, text: str = "") -> None:
    line = Text(f"{number}. {title}", style="bold magenta")
    if text:
        line.append(f"  {text}", style="")
    console.print()
    console.print(line)


@click.command("demo", short_help="Run the seed's demo pipeline, step by step.")
@click.option(
    "--db",
    "db",
    default=None,
    metavar="URL",
    help="Run on this database instead of a fresh temporary SQLite file.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary database (its path is printed).")
@click.pass_context
def demo_command(ctx: click.Context, db: str | None, keep: bool) -> None:
    """Run the demo pipeline collect_data -> process_data -> generate_report.

    Shows every step: the workflow's definition, scheduling, each task starting and
    completing, and the final report. By default it runs on a temporary SQLite database that
    is deleted afterwards.
    """
    from cloacina.demo import data_processing
    from cloacina.model.workflow import workflow_of

    console = out_console()
    root = ctx.find_root()
    if db is None and root.get_parameter_source("db") == click.core.ParameterSource.COMMANDLINE:
        db = str(root.params["db"])
    tmpdir: str | None = None
    if db is None:
        tmpdir = tempfile.mkdtemp(prefix="cloacina-demo-")
        url = f"sqlite:///{Path(tmpdir) / 'demo.db'}"
    else:
        url = db

    console.rule(Text("Cloacina demo: data processing pipeline", style="bold"))
    wf = workflow_of(data_processing)
    arrow = " → " if fancy(console) else " -> "
    _step(console, 1, "Define", f"workflow {wf.name!r} ({wf.package}), {len(wf.tasks)} tasks")
    console.print(Text(f"   {arrow.join(wf.graph.order)}", style="cyan"))
    for tid, task in wf.tasks.items():
        deps = ", ".join(task.dependencies) or "none"
        retry = task.retry.max_attempts
        plural = "attempt" if retry == 1 else "attempts"
        console.print(Text(f"   - {tid:<16} depends on: {deps:<14} retry: up to {retry} {plural}"))
    console.print(Text(f"   version {wf.version[:12]}", style="dim"))

    try:
        with DefaultRunner(url) as runner:
            where = "temporary database" if tmpdir else "database"
            _step(console, 2, "Open", f"{where} {url}")
            started = time.time()
            execution_id = runner.schedule_workflow(wf.name, DEMO_INPUT)
            _step(console, 3, "Schedule", f"execution {execution_id}")
            _step(console, 4, "Execute", "tasks run as their dependencies complete")
            try:
                result = follow(runner, execution_id, EventPrinter(console, started, indent="   "))
            except KeyboardInterrupt:
                with contextlib.suppress(InvalidStateError):
                    runner.cancel(execution_id)
                raise CliInterrupted(
                    f"interrupted: demo execution {execution_id} was cancelled"
                ) from None
        _step(console, 5, "Monitor", f"run {result.status} in {fmt_duration(result.duration)}")
        render_tasks(console, result, {tid: t.retry.max_attempts for tid, t in wf.tasks.items()})
        _step(console, 6, "Report")
        report = result.final_context.get("final_report")
        if isinstance(report, dict):
            print_json_block(console, report)
            summary = report.get("summary", {})
            processed = result.final_context.get("processed_data", {})
            console.print(
                Text(
                    f"   processed {summary.get('total_processed')} of "
                    f"{processed.get('original_count')} records "
                    f"(success rate {summary.get('success_rate')})",
                    style="bold green",
                )
            )
        else:
            console.print(Text("   no report: the run did not complete", style="bold red"))
            if result.error:
                console.print(Text(f"   {result.error}", style="red"))
        console.print()
        if tmpdir is None or keep:
            console.print(
                Text(
                    f"Inspect this run: cloacina executions show {execution_id[:8]} "
                    f"--events --db {url}",
                    style="dim",
                ),
                soft_wrap=True,
            )
    finally:
        if tmpdir is not None and not keep:
            shutil.rmtree(tmpdir, ignore_errors=True)
    ctx.exit(exit_code_for(result.status))
