"""The whole packaged-workflow lifecycle, for real, in one script.

1. Define    the workflow lives in src/simple_demo/workflows.py (a normal Python project)
2. Compile   the project is imported in a clean process and validated
3. Package   a reproducible .cloacina archive is written to dist/
4. Load      the archive is registered into a fresh SQLite database (verified, stored)
5. Execute   the runner schedules data_processing; its tasks run in the package's processes
6. Monitor   a live display follows every task until the run ends; then the report

Run it with ``python end_to_end_demo.py`` (or ``python3 dev.py demo`` from the repository).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from cloacina import DefaultRunner, WorkflowResult
from cloacina.packaging.archive import read_archive
from cloacina.packaging.build import build_package

HERE = Path(__file__).resolve().parent
console = Console()
ICONS = {
    "pending": "[dim]○ pending[/]",
    "ready": "[cyan]◌ ready[/]",
    "running": "[yellow]▶ running[/]",
    "completed": "[green]✓ completed[/]",
    "failed": "[red]✗ failed[/]",
    "skipped": "[magenta]↷ skipped[/]",
}


def step(number: int, title: str, text: str) -> None:
    console.print(f"\n[bold cyan]{number}. {title}[/]  {text}")


def progress_view(result: WorkflowResult, progress: Progress, bar: int) -> Group:
    done = sum(t.status in ("completed", "failed", "skipped") for t in result.tasks.values())
    progress.update(bar, completed=done, total=len(result.tasks))
    table = Table(box=None, padding=(0, 2))
    for column in ("task", "status", "attempt", "duration"):
        table.add_column(column)
    now = time.time()
    for task_id, task in result.tasks.items():
        if task.duration is not None:
            duration = f"{task.duration * 1000:.0f} ms"
        elif task.started_at is not None and task.status == "running":
            duration = f"{(now - task.started_at.timestamp()) * 1000:.0f} ms…"
        else:
            duration = ""
        table.add_row(task_id, ICONS[task.status], str(task.attempts or ""), duration)
    return Group(progress, table)


def main() -> int:
    console.rule("[bold]Cloacina: the packaged workflow lifecycle, end to end")
    step(1, "Define", "src/simple_demo/workflows.py: data_processing, a @packaged_workflow")
    step(2, "Compile + 3. Package", "cloacina package build")
    archive_path = build_package(HERE, HERE / "dist", log=lambda msg: console.print(f"   {msg}"))
    data = archive_path.read_bytes()
    archive = read_archive(data)
    console.print(
        f"   [green]✓[/] {archive_path.name}: {len(data):,} bytes, sha256 {archive.sha256[:16]}…"
    )

    workdir = Path(tempfile.mkdtemp(prefix="cloacina-e2e-demo-"))
    url = f"sqlite:///{workdir}/cloacina.db"
    step(4, "Load", f"register into a fresh database {url}")
    with DefaultRunner(url, poll_interval=0.1) as runner:
        package_id = runner.register_workflow(data)
        for pkg in runner.list_packages():
            console.print(
                f"   [green]✓[/] package {pkg.package} {pkg.version} (id {package_id[:8]}…)"
                f" holds workflows: {', '.join(pkg.workflows)}"
            )

        step(5, "Execute", "schedule data_processing; tasks run in the package's processes")
        execution_id = runner.schedule_workflow("data_processing", {"requested_by": "demo"})
        console.print(f"   execution {execution_id}")

        step(6, "Monitor", "live progress until the run ends")
        progress = Progress(
            TextColumn("   data_processing"), BarColumn(), TaskProgressColumn(), console=console
        )
        bar = progress.add_task("run", total=len(archive.manifest.workflows[0].tasks))
        result = runner.get_execution(execution_id)
        view = progress_view(result, progress, bar)
        with Live(view, console=console, refresh_per_second=12) as live:
            while not result.status.is_terminal:
                time.sleep(0.08)
                result = runner.get_execution(execution_id)
                live.update(progress_view(result, progress, bar))
        console.print(f"\n   run {result.status} in {result.duration or 0:.2f}s")

    if result.status != "completed":
        console.print(f"[red]the run did not complete: {result.error}[/]")
        return 1
    report = result.final_context["final_report"]
    console.print(
        Panel.fit(
            f"report      {report['report_id']}\n"
            f"processed   {report['summary']['total_processed']} of "
            f"{result.final_context['raw_data']['records']} records\n"
            f"success     {report['summary']['success_rate']}\n"
            f"generated   {report['generated_at']}",
            title="Report",
            border_style="green",
        )
    )
    console.print(f"\ndatabase kept at {workdir}/cloacina.db — try:")
    console.print(f"  cloacina executions show {execution_id[:8]} --db {url}")
    console.print(f"  cloacina serve --db {url} --no-auth   # then open http://127.0.0.1:8080/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
