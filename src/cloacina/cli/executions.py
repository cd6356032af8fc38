"""``cloacina executions list|show|watch|cancel|pause|resume|prune``: the history of workflow
runs, runs as they go, controlling a run, and removing old ones."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from cloacina.cli.consoles import fancy, out_console
from cloacina.cli.databases import display_url, open_existing_store
from cloacina.cli.durations import DURATION, fmt_span, parse_duration
from cloacina.cli.errors import CliError, CliInterrupted, exit_code_for, print_error
from cloacina.cli.formatting import (
    elapsed,
    escape_controls,
    fmt_duration,
    fmt_time,
    iso,
    safe_text,
    status_text,
)
from cloacina.cli.json_output import echo_json, result_json
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.render import (
    new_table,
    render_context,
    render_events,
    render_header,
    render_tasks,
    render_tracebacks,
    shrink_to_fit,
)
from cloacina.cli.workers import worker_status
from cloacina.cli.workflows import open_registry
from cloacina.errors import ExecutionNotFoundError, InvalidStateError
from cloacina.model.context import loads_context
from cloacina.model.status import TERMINAL_EXECUTION, ExecutionStatus, WorkflowResult, to_datetime
from cloacina.runner import DefaultRunner, build_result
from cloacina.store import Store
from cloacina.store.records import ExecutionRow, TaskRow, WorkerRow

#: How many characters of an execution id ``executions list`` shows (``show`` takes prefixes).
SHORT_ID = 8


@click.group("executions")
def executions_group() -> None:
    """Inspect workflow executions (runs) stored in the database, or follow one live."""


def _row_json(row: ExecutionRow) -> dict[str, Any]:
    started, finished = to_datetime(row.started_at), to_datetime(row.finished_at)
    duration = elapsed(started, finished, row.status)
    return {
        "execution_id": row.id,
        "workflow": row.workflow_name,
        "version": row.workflow_version,
        "package": row.package,
        "tenant": row.tenant,
        "status": row.status,
        "error": row.error,
        "created_at": iso(to_datetime(row.created_at)),
        "started_at": iso(started),
        "finished_at": iso(finished),
        "duration": None if duration is None else round(duration, 6),
        "tasks_total": row.tasks_total,
        "tasks_done": row.tasks_total - row.tasks_remaining,
        "tasks_failed": row.tasks_failed,
    }


def _where(url: str, tenant: str) -> str:
    """The database (without its password) and the tenant unless it is ``public``."""
    return display_url(url) + ("" if tenant == "public" else f" (tenant {tenant})")


def resolve_execution(store: Store, ident: str) -> ExecutionRow:
    """The execution with id ``ident``, or the only one whose id starts with ``ident``."""
    ident = ident.strip()
    if not ident:
        raise CliError("give an execution id (or a unique prefix of one)")
    row = store.get_execution(ident)
    if row is not None:
        return row
    matches = store.find_executions(ident, limit=6)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CliError(
            f"no workflow execution with id or id prefix {ident!r}; "
            "list them with: cloacina executions list"
        )
    shown = ", ".join(f"{r.id} ({r.workflow_name})" for r in matches[:5])
    more = " and more" if len(matches) > 5 else ""
    raise CliError(
        f"execution id prefix {ident!r} is ambiguous: it matches {shown}{more}; "
        "give more characters"
    )


class SinceType(click.ParamType[float, Any]):
    """``--since``: a duration (``1d``: that long before now) or an ISO date or date and
    time; the moment as epoch seconds."""

    name = "since"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            return time.time() - parse_duration(text)
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is neither a duration (1d, 12h, 30m) nor a date or time "
                "(2024-05-01, 2024-05-01T13:00)",
                param,
                ctx,
            )
        return when.timestamp()  # a date or time without a zone is local time


SINCE = SinceType()


@executions_group.command("list")
@db_option
@tenant_option
@click.option(
    "--status",
    type=click.Choice([s.value for s in ExecutionStatus]),
    help="Only runs with this status.",
)
@click.option("--workflow", "-w", metavar="NAME", help="Only runs of this workflow.")
@click.option(
    "--since",
    type=SINCE,
    metavar="WHEN",
    help="Only runs created since WHEN: a duration ago (1d, 12h, 30m) or a date or time "
    "(2024-05-01, 2024-05-01T13:00, local time unless it names its zone).",
)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many runs to show (newest first).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_context
def list_command(
    ctx: click.Context,
    db: str | None,
    tenant: str | None,
    status: str | None,
    workflow: str | None,
    since: float | None,
    limit: int,
    as_json: bool,
) -> None:
    """List recent workflow executions, newest first; --status, --workflow and --since
    narrow the list (`executions list --since 1d --status failed`)."""
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    store = open_existing_store(url, tenant_name)
    try:
        rows = store.list_executions(
            limit=limit,
            status=status,
            workflow_name=workflow,
            since=since,
        )
    finally:
        store.close()
    if as_json:
        echo_json([_row_json(r) for r in rows])
        return
    console = out_console()
    if not rows:
        filters = [f"status {status}" if status else "", f"workflow {workflow}" if workflow else ""]
        which = " with " + " and ".join(f for f in filters if f) if status or workflow else ""
        if since is not None:
            which += f" created since {fmt_time(to_datetime(since))}"
        console.print(
            Text(f"No workflow executions{which} in {_where(url, tenant_name)}.", style="dim"),
            soft_wrap=True,
        )
        return
    table = new_table(f"Executions in {_where(url, tenant_name)}")
    table.add_column("id", no_wrap=True)
    table.add_column("workflow", overflow="fold", min_width=8)
    table.add_column("status", no_wrap=True)
    table.add_column("tasks", justify="right", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for row in rows:
        started, finished = to_datetime(row.started_at), to_datetime(row.finished_at)
        table.add_row(
            row.id[:SHORT_ID],
            safe_text(row.workflow_name),
            status_text(row.status),
            f"{row.tasks_total - row.tasks_remaining}/{row.tasks_total}",
            fmt_time(started),
            fmt_duration(elapsed(started, finished, row.status)),
        )
    shrink_to_fit(console, table, {"started": 11})  # the date gives way, not the name
    console.print(table)
    if len(rows) == limit:
        console.print(Text(f"(newest {limit}; use --limit to see more)", style="dim"))


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


@executions_group.command("show")
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


# ---- cancel / pause / resume -----------------------------------------------------------------
def _control(
    ctx: click.Context,
    db: str | None,
    tenant: str | None,
    ident: str,
    act: Callable[[DefaultRunner, str], None],
    done: str,
) -> None:
    """Resolve ``ident`` (a unique prefix will do), call ``act`` on a submit-only runner,
    print ``done`` (formatted with the run). A run in the wrong state for it, or gone
    meanwhile, is the runner's message on stderr and exit code 1."""
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    store = open_existing_store(url, tenant_name)  # a clear error for a missing database
    try:
        row = resolve_execution(store, ident)
    finally:
        store.close()
    runner = DefaultRunner(url, tenant=tenant_name, execute_tasks=False)
    try:
        act(runner, row.id)
    except (InvalidStateError, ExecutionNotFoundError) as exc:
        print_error(str(exc))
        ctx.exit(1)
    finally:
        runner.shutdown()
    message = done.format(id=row.id, short=row.id[:SHORT_ID], workflow=row.workflow_name)
    out_console().print(Text(escape_controls(message)), soft_wrap=True)


@executions_group.command("cancel")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@click.option(
    "--reason",
    metavar="TEXT",
    help="Why: stored as the run's error (default: 'cancelled by request').",
)
@click.pass_context
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


@executions_group.command("pause")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@click.pass_context
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
        DefaultRunner.pause,
        "Paused workflow execution {id} ({workflow}); its running tasks finish, no new one "
        "starts. Resume it with: cloacina executions resume {short}",
    )


@executions_group.command("resume")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@click.pass_context
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
        DefaultRunner.resume,
        "Resumed workflow execution {id} ({workflow}).",
    )


# ---- watch -----------------------------------------------------------------------------------
#: Task statuses that count as settled in the progress bar.
SETTLED = frozenset({"completed", "failed", "skipped"})

Snapshot = tuple[ExecutionRow, list[TaskRow]]


def _poll(store: Store, execution_id: str) -> Snapshot:
    """The run and its tasks, read in that order (so a finished run comes with final tasks)."""
    row = store.get_execution(execution_id)
    if row is None:
        raise CliError(f"workflow execution {execution_id} disappeared from the database")
    return row, store.get_tasks(execution_id)


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().split("\n")  # a carriage return is shown, escaped
    return lines[0] if lines else ""


def _attempt(task: TaskRow) -> str:
    attempt = f"{task.attempt}/{task.max_attempts}" if task.max_attempts > 1 else str(task.attempt)
    if task.recovery_count:
        attempt += f", recovery {task.recovery_count}"
    return attempt


def _retry_pending(task: TaskRow) -> bool:
    return task.status == "ready" and task.retry_at is not None and task.error is not None


def _counts(tasks: Sequence[TaskRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    return counts


def _tasks_word(n: int) -> str:
    return "1 task" if n == 1 else f"{n} tasks"


def _run_elapsed(row: ExecutionRow) -> float | None:
    return elapsed(to_datetime(row.started_at), to_datetime(row.finished_at), row.status)


def stall_hint(
    row: ExecutionRow,
    tasks: Sequence[TaskRow],
    workers: Sequence[WorkerRow],
    now: float,
    start_worker: str,
) -> str | None:
    """Why a run makes no progress, when the database can tell: it is paused, its running
    tasks are held by workers that stopped sending heartbeats, or its ready tasks wait and
    no worker is alive. ``None`` when nothing is wrong as far as can be seen. The text does
    not change while the situation does not (so a watcher says it once)."""
    if row.status == ExecutionStatus.PAUSED:
        return (
            "this run is paused: no new task of it starts until it is resumed with: "
            f"cloacina executions resume {row.id[:SHORT_ID]}"
        )
    if row.status != ExecutionStatus.RUNNING:
        return None
    by_id = {w.id: w for w in workers}
    live = {w.id for w in workers if worker_status(w, now) == "running"}
    orphaned = [t for t in tasks if t.status == "running" and t.worker_id not in live]
    if orphaned:
        names = ", ".join(repr(t.task_id) for t in orphaned[:3])
        if len(orphaned) > 3:
            names += f" and {len(orphaned) - 3} more"
        holders = []
        for holder in sorted({t.worker_id or "?" for t in orphaned}):
            worker = by_id.get(holder)
            if worker is None:
                holders.append(f"{holder} (not in the database's workers)")
            elif worker.status == "stopped":
                holders.append(f"{holder} (stopped)")
            else:
                last = fmt_time(to_datetime(worker.last_heartbeat))
                holders.append(f"{holder} (silent since {last}: it probably died)")
        many = len(orphaned) > 1
        them = "them" if many else "it"
        text = (
            f"no live worker holds running task{'s' if many else ''} {names}: "
            f"{'they are' if many else 'it is'} claimed by {', '.join(holders)}"
        )
        if live:
            return f"{text}; a live worker takes {them} back once the claim is stale"
        return (
            f"{text}; no live worker is running to take {them} back: start one with: {start_worker}"
        )
    waiting = any(t.status == "ready" for t in tasks)
    if waiting and not live and not any(t.status == "running" for t in tasks):
        return (
            "no live worker is running: the ready tasks of this run wait for one; start one "
            f"with: {start_worker}"
        )
    return None


class StallWatch:
    """Checks a watched run for :func:`stall_hint`, reading the workers at most once per
    ``every`` seconds (their heartbeats change slowly; the run's rows are read anyway)."""

    def __init__(self, store: Store, start_worker: str, every: float = 1.0) -> None:
        self.store = store
        self.start_worker = start_worker
        self.every = every
        self._workers: list[WorkerRow] = []
        self._read_at: float | None = None

    def hint(self, row: ExecutionRow, tasks: Sequence[TaskRow]) -> str | None:
        if row.status in TERMINAL_EXECUTION:
            return None
        now = time.time()
        if self._read_at is None or now - self._read_at >= self.every:
            self._workers = self.store.list_workers(include_stopped=True)
            self._read_at = now
        return stall_hint(row, tasks, self._workers, now, self.start_worker)


def watch_view(
    row: ExecutionRow, tasks: Sequence[TaskRow], *, unicode: bool, hint: str | None = None
) -> RenderableType:
    """What ``executions watch`` shows on a terminal: the run's status and elapsed time, a
    progress bar over the settled tasks, why it is stuck (``hint``) and one row per task."""
    now = time.time()
    header = Text.assemble(
        (row.workflow_name, "bold"),
        "  ",
        (row.id, "dim"),
        "  ",
    )
    header.append_text(status_text(row.status, icon=unicode))
    took = _run_elapsed(row)
    header.append("  " + (fmt_duration(took) if took is not None else "waiting to start"))

    total = len(tasks) or row.tasks_total
    counts = _counts(tasks)
    settled = sum(counts.get(s, 0) for s in SETTLED)
    failed = row.status in ("failed", "cancelled") or counts.get("failed", 0) > 0
    bar = ProgressBar(
        total=max(total, 1),
        completed=settled,
        width=40,
        complete_style="red" if failed else "cyan",
        finished_style="red" if failed else "green",
    )
    summary = Text(f" {settled}/{total} settled")
    parts = [
        f"{counts[s]} {s}" for s in ("running", "completed", "failed", "skipped") if counts.get(s)
    ]
    if parts:
        summary.append("  (" + ", ".join(parts) + ")", style="dim")
    progress = Table.grid(padding=(0, 1))
    progress.add_row(bar, summary)

    table = new_table("")
    table.add_column("task", overflow="fold", min_width=8)
    table.add_column("status", no_wrap=True, min_width=11)
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True, min_width=8)
    table.add_column("error / skip reason", overflow="fold")
    for task in tasks:
        started, finished = to_datetime(task.started_at), to_datetime(task.finished_at)
        if _retry_pending(task):
            wait = max(0.0, (task.retry_at or now) - now)
            status = Text.assemble(
                status_text("ready", icon=unicode), (f" (retry in {fmt_duration(wait)})", "dim")
            )
        else:
            status = status_text(task.status, icon=unicode)
        if task.status == "skipped":
            note = safe_text(task.skip_reason or "", "yellow")
        else:
            note = safe_text(_first_line(task.error), "red")
        table.add_row(
            safe_text(task.task_id),
            status,
            _attempt(task) if task.attempt else "-",
            fmt_duration(elapsed(started, finished, task.status)),
            note,
        )
    items: list[RenderableType] = [header, progress]
    if hint:
        items.append(safe_text(f"note: {hint}", "yellow"))
    items.append(table)
    if row.error and row.status in TERMINAL_EXECUTION:
        items.append(safe_text(f"error: {row.error}", "red", multiline=True))
    return Group(*items)


class ChangePrinter:
    """``executions watch`` without a terminal: one plain line per change of a task's state
    (or of the run's status), times relative to the run's start."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.tasks: dict[str, tuple[str, int, int, bool]] = {}
        self.run_status: str | None = None
        self.hint: str | None = None

    def _print(self, text: str) -> None:
        # One line per change: what came from a task is escaped, newlines included.
        self.console.print(Text(escape_controls(text)), soft_wrap=True)

    def _stamp(self, row: ExecutionRow, at: float | None) -> str:
        base = row.started_at if row.started_at is not None else row.created_at
        when = at if at is not None else time.time()
        return f"[+{max(0.0, when - base):.2f}s]"

    def start(self, row: ExecutionRow, tasks: Sequence[TaskRow]) -> None:
        self._print(
            f"watching execution {row.id} (workflow {row.workflow_name}, "
            f"{_tasks_word(len(tasks) or row.tasks_total)}): {row.status}"
        )
        self.run_status = row.status

    def update(self, row: ExecutionRow, tasks: Sequence[TaskRow]) -> None:
        for task in tasks:
            key = (task.status, task.attempt, task.recovery_count, _retry_pending(task))
            before = self.tasks.get(task.task_id)
            if before == key:
                continue
            self.tasks[task.task_id] = key
            if before is None and task.status == "pending":
                continue  # nothing happened to it yet
            self._task_line(row, task)
        if row.status != self.run_status:
            self.run_status = row.status
            if row.status not in TERMINAL_EXECUTION:
                self._print(f"{self._stamp(row, None)} execution {row.status}")

    def note(self, row: ExecutionRow, hint: str | None) -> None:
        """Say why the run is stuck, once, and again when that changes."""
        if hint != self.hint and hint is not None:
            self._print(f"{self._stamp(row, None)} note: {hint}")
        self.hint = hint

    def _task_line(self, row: ExecutionRow, task: TaskRow) -> None:
        tid, status = task.task_id, task.status
        at: float | None = None
        if status == "running":
            at = task.started_at
            text = f"{tid} running (attempt {_attempt(task)})"
        elif status == "completed":
            at = task.finished_at
            took = elapsed(to_datetime(task.started_at), to_datetime(task.finished_at), task.status)
            text = f"{tid} completed in {fmt_duration(took)}"
            if task.attempt > 1:
                text += f" (attempt {_attempt(task)})"
        elif status == "failed":
            at = task.finished_at
            text = f"{tid} failed (attempt {_attempt(task)}): {_first_line(task.error)}"
        elif status == "skipped":
            at = task.finished_at
            text = f"{tid} skipped: {task.skip_reason or 'no reason recorded'}"
        elif _retry_pending(task):
            wait = max(0.0, (task.retry_at or 0.0) - time.time())
            text = (
                f"{tid} failed (attempt {_attempt(task)}): {_first_line(task.error)}; "
                f"retrying in {fmt_duration(wait)}"
            )
        else:
            text = f"{tid} {status}"
        self._print(f"{self._stamp(row, at)} {text}")

    def finish(self, row: ExecutionRow, tasks: Sequence[TaskRow]) -> None:
        counts = _counts(tasks)
        parts = [f"{counts[s]} {s}" for s in ("completed", "failed", "skipped") if counts.get(s)]
        unsettled = len(tasks) - sum(counts.get(s, 0) for s in SETTLED)
        if unsettled:
            parts.append(f"{unsettled} not run")
        line = (
            f"execution {row.id} {row.status} in {fmt_duration(_run_elapsed(row))}: "
            f"{', '.join(parts) or 'no tasks'}"
        )
        if row.error:
            line += f"; error: {_first_line(row.error)}"
        self._print(line)


def _watch_plain(
    console: Console, store: Store, first: Snapshot, interval: float, stall: StallWatch
) -> Snapshot:
    printer = ChangePrinter(console)
    row, tasks = first
    printer.start(row, tasks)
    while True:
        printer.update(row, tasks)
        printer.note(row, stall.hint(row, tasks))
        if row.status in TERMINAL_EXECUTION:
            printer.finish(row, tasks)
            return row, tasks
        time.sleep(interval)
        row, tasks = _poll(store, row.id)


def _watch_live(
    console: Console, store: Store, first: Snapshot, interval: float, stall: StallWatch
) -> Snapshot:
    unicode = fancy(console)
    row, tasks = first
    if row.status not in TERMINAL_EXECUTION:
        with Live(
            watch_view(row, tasks, unicode=unicode, hint=stall.hint(row, tasks)),
            console=console,
            auto_refresh=False,
            transient=True,
        ) as live:
            while row.status not in TERMINAL_EXECUTION:
                time.sleep(interval)
                row, tasks = _poll(store, row.id)
                view = watch_view(row, tasks, unicode=unicode, hint=stall.hint(row, tasks))
                live.update(view, refresh=True)
    console.print(watch_view(row, tasks, unicode=unicode))
    if row.status != ExecutionStatus.COMPLETED:
        console.print(Text(f"details: cloacina executions show {row.id[:SHORT_ID]}", style="dim"))
    return row, tasks


@executions_group.command("watch")
@click.argument("execution_id", metavar="ID")
@db_option
@tenant_option
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=0.2,
    show_default=True,
    metavar="SECONDS",
    help="How often to re-read the run from the database.",
)
@click.pass_context
def watch_command(
    ctx: click.Context, execution_id: str, db: str | None, tenant: str | None, interval: float
) -> None:
    """Follow one workflow execution live until it ends.

    On a terminal: a progress bar and a table of the tasks, refreshed every --interval.
    Otherwise (a pipe, a file): one line per change of a task's state and a summary line.
    ID may be a unique prefix of the execution id. Exit code 0 when the run completed,
    1 when it failed or was cancelled; Ctrl-C stops watching (the run carries on). When the
    run is paused, or no live worker holds its running tasks (the worker died) or could
    start its ready ones, a note says so, and watching goes on.
    """
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    store = open_existing_store(url, tenant_name)
    try:
        row = resolve_execution(store, execution_id)
        snapshot = _poll(store, row.id)
        console = out_console()
        start_worker = f"cloacina worker --db {display_url(url)}" + (
            "" if tenant_name == "public" else f" --tenant {tenant_name}"
        )
        stall = StallWatch(store, start_worker)
        try:
            if console.is_terminal:
                row, _tasks = _watch_live(console, store, snapshot, interval, stall)
            else:
                row, _tasks = _watch_plain(console, store, snapshot, interval, stall)
        except KeyboardInterrupt:
            raise CliInterrupted(
                f"stopped watching workflow execution {row.id}; the run itself carries on"
            ) from None
    finally:
        store.close()
    ctx.exit(exit_code_for(row.status))


# ---- prune -----------------------------------------------------------------------------------
def _runs(n: int) -> str:
    return "1 finished run" if n == 1 else f"{n} finished runs"


@executions_group.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=DURATION,
    required=True,
    metavar="DURATION",
    help="Remove runs that finished longer ago than this: 30d, 12h, 90m, 0s (all finished).",
)
@db_option
@tenant_option
@click.option("--dry-run", is_flag=True, help="Only count the runs that would be removed.")
@click.pass_context
def prune_command(
    ctx: click.Context, older_than: float, db: str | None, tenant: str | None, dry_run: bool
) -> None:
    """Remove finished workflow runs (completed, failed or cancelled) older than --older-than,
    with their tasks, outputs and events. Running, paused and pending runs are never removed.
    """
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    store = open_existing_store(url, tenant_name, read_only=dry_run)  # pruning writes
    cutoff = time.time() - older_than
    try:
        count = store.count_finished_before(cutoff) if dry_run else store.prune_executions(cutoff)
    finally:
        store.close()
    where = _where(url, tenant_name)
    age = fmt_span(older_than)
    verb = "Would remove" if dry_run else "Removed"
    out_console().print(
        Text(f"{verb} {_runs(count)} older than {age} from {where}."), soft_wrap=True
    )
