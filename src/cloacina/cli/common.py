"""What the command groups share: the ``--db`` option, errors, consoles and rendering.

The CLI is a thin layer: it calls :class:`~cloacina.runner.DefaultRunner` and the read methods
of the :class:`~cloacina.store.Store`; it never talks SQL.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cloacina.errors import ExecutionTimeoutError, StoreError
from cloacina.model.status import (
    TERMINAL_EXECUTION,
    ExecutionStatus,
    TaskResult,
    TaskStatus,
    WorkflowResult,
    to_datetime,
)
from cloacina.runner import DefaultRunner
from cloacina.store import Store, normalize_url, open_store
from cloacina.store import check_tenant_name as store_check_tenant_name
from cloacina.store.records import EventRow, ExecutionRow

DB_ENV = "CLOACINA_DB"
DEFAULT_DB = "sqlite:///cloacina.db"
TENANT_ENV = "CLOACINA_TENANT"
DEFAULT_TENANT = "public"
#: How many recent executions an id prefix is matched against.

F = TypeVar("F", bound=Callable[..., Any])

STATUS_STYLES: dict[str, str] = {
    "completed": "green",
    "failed": "bold red",
    "skipped": "yellow",
    "cancelled": "magenta",
    "paused": "yellow",
    "running": "cyan",
    "ready": "blue",
    "pending": "dim",
}


# ---- errors ----------------------------------------------------------------------------------
class CliError(click.ClickException):
    """A user error: printed as ``error: <message>`` in red on stderr, no traceback."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        print_error(self.format_message())


class CliInterrupted(CliError):
    """The user pressed Ctrl-C."""

    exit_code = 130


def print_error(message: str) -> None:
    """``error: <message>`` in red on stderr."""
    err_console().print(Text.assemble(("error: ", "bold red"), (message, "red")))


# ---- consoles --------------------------------------------------------------------------------
def out_console() -> Console:
    """A console on stdout (plain text when stdout is not a terminal)."""
    return Console(soft_wrap=False, highlight=False)


def err_console() -> Console:
    """A console on stderr."""
    return Console(stderr=True, soft_wrap=True, highlight=False)


def fancy(console: Console) -> bool:
    """Whether ``console`` can print non-ASCII symbols."""
    return console.encoding.lower().replace("-", "").startswith("utf")


# ---- the database option ---------------------------------------------------------------------
def db_option(func: F) -> F:
    """``--db URL`` on a command; falls back to the group's ``--db`` (or $CLOACINA_DB)."""
    return click.option(
        "--db",
        "db",
        default=None,
        metavar="URL",
        help=f"Database URL [default: ${DB_ENV} or {DEFAULT_DB}].",
    )(func)


def resolve_db(ctx: click.Context, value: str | None) -> str:
    """The database URL a command should use: its own ``--db``, else the group's."""
    if value:
        return value
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    url = obj.get("db")
    return url if isinstance(url, str) and url else os.environ.get(DB_ENV) or DEFAULT_DB


def sqlite_file(url: str, tenant: str = DEFAULT_TENANT) -> Path | None:
    """The file behind a SQLite URL (``tenant``'s file beside it), ``None`` for other
    databases."""
    url = normalize_url(url)
    if not url.startswith("sqlite:"):
        return None
    from cloacina.store.sqlite import sqlite_path, tenant_url

    return Path(sqlite_path(tenant_url(url, tenant)))


def open_existing_store(url: str, tenant: str = DEFAULT_TENANT) -> Store:
    """Open a database (and tenant) that must exist already: read commands create neither."""
    path = sqlite_file(url, tenant)
    if path is not None and not path.exists():
        if tenant != DEFAULT_TENANT:
            raise CliError(
                f"no tenant {tenant!r} in {url}: no database at {str(path)!r}; create it with: "
                f"cloacina tenant create {tenant} --db {url}"
            )
        raise CliError(
            f"no database at {str(path)!r} (from --db {url}); run a workflow first, or point "
            f"--db (or ${DB_ENV}) at an existing database"
        )
    require_tenant(url, tenant)
    return open_store(url, tenant=tenant)


# ---- the tenant option -----------------------------------------------------------------------
def tenant_option(func: F) -> F:
    """``--tenant T`` on a command; falls back to the group's ``--tenant`` (or
    $CLOACINA_TENANT), else ``public``."""
    return click.option(
        "--tenant",
        "tenant",
        default=None,
        metavar="NAME",
        help=f"Tenant [default: ${TENANT_ENV} or {DEFAULT_TENANT}].",
    )(func)


def check_tenant_name(name: str) -> str:
    """``name`` if it is a valid tenant name (a PostgreSQL schema / SQLite file name part)."""
    try:
        return store_check_tenant_name(name)
    except StoreError as exc:
        raise CliError(str(exc)) from None


def resolve_tenant(ctx: click.Context, value: str | None) -> str:
    """The tenant a command should use: its own ``--tenant``, else the group's (which reads
    $CLOACINA_TENANT), else ``public``."""
    if not value:
        root = ctx.find_root()
        obj = root.obj if isinstance(root.obj, dict) else {}
        group = obj.get("tenant")
        value = (
            group
            if isinstance(group, str) and group
            else os.environ.get(TENANT_ENV) or DEFAULT_TENANT
        )
    return check_tenant_name(value)


def is_postgres(url: str) -> bool:
    return normalize_url(url).startswith(("postgresql:", "postgresql+", "postgres:"))


def postgres_url(url: str) -> str:
    """A PostgreSQL URL as SQLAlchemy names the dialect (``postgres://`` is an alias)."""
    url = normalize_url(url)
    return "postgresql:" + url[len("postgres:") :] if url.startswith("postgres:") else url


def postgres_tenants(url: str) -> list[str]:
    """The schemas of a PostgreSQL database that hold a Cloacina tenant."""
    from sqlalchemy.exc import SQLAlchemyError

    from cloacina.store.postgres import list_schemas

    try:
        return list_schemas(postgres_url(url))
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip()
        raise CliError(f"cannot read the tenants of {display_url(url)}: {detail}") from None


def tenant_exists(url: str, tenant: str) -> bool:
    """Whether ``tenant`` has a database (SQLite file, PostgreSQL schema) at ``url``."""
    path = sqlite_file(url, tenant)
    if path is not None:
        return path.exists()
    return tenant in postgres_tenants(url)


def require_tenant(url: str, tenant: str) -> None:
    """A clear error unless tenant ``tenant`` exists (``public`` always does: opening a
    database creates it). Commands do not create tenants by accident, only
    ``cloacina tenant create`` does."""
    if tenant == DEFAULT_TENANT or tenant_exists(url, tenant):
        return
    raise CliError(
        f"no tenant {tenant!r} in {display_url(url)}; create it with: "
        f"cloacina tenant create {tenant} --db {display_url(url)}"
    )


def display_url(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    if not is_postgres(url):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(postgres_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return url


# ---- durations -------------------------------------------------------------------------------
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``"30s"``, ``"5m"``, ``"2h"``, ``"30d"``, ``"1w"``, ``"250ms"``
    or plain seconds (``"90"``, ``"0.5"``). Raises ``ValueError`` for anything else."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: use a number of seconds or a number with a unit, "
            "such as 30s, 5m, 2h, 30d (units: ms, s, m, h, d, w)"
        )
    seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}: too large")
    return seconds


def fmt_span(seconds: float) -> str:
    """A duration as :func:`parse_duration` reads it: ``30d``, ``2h``, ``90s``, ``0.5s``."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class DurationType(click.ParamType[float, Any]):
    """A click parameter for durations (see :func:`parse_duration`), in seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < 0 or not math.isfinite(value):
                self.fail(f"invalid duration {value!r}: must be a finite number >= 0", param, ctx)
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationType()


# ---- formatting ------------------------------------------------------------------------------
def fmt_duration(seconds: float | None) -> str:
    """``215ms``, ``1.25s``, ``2m 05s``, ``1h 02m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def fmt_time(value: datetime | None) -> str:
    """A timestamp in local time, ``-`` when unknown."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


#: An icon per status: (terminal that can print Unicode, plain ASCII).
STATUS_ICONS: dict[str, tuple[str, str]] = {
    "completed": ("✓", "+"),
    "failed": ("✗", "x"),
    "skipped": ("↷", "~"),
    "cancelled": ("■", "#"),
    "paused": ("‖", "="),
    "running": ("▶", ">"),
    "ready": ("○", "o"),
    "pending": ("·", "."),
}


def status_text(status: str, icon: bool | None = None) -> Text:
    """``status`` in its colour; with ``icon`` (True: Unicode, False: ASCII) an icon first."""
    text = str(status)
    if icon is not None:
        pair = STATUS_ICONS.get(text)
        if pair is not None:
            text = f"{pair[0] if icon else pair[1]} {text}"
    return Text(text, style=STATUS_STYLES.get(str(status), ""))


def elapsed(started: datetime | None, finished: datetime | None, status: str) -> float | None:
    """A run's or task's duration; for one still running, the time it has run so far."""
    if started is None:
        return None
    if finished is not None:
        return (finished - started).total_seconds()
    if status in ("running", "paused"):
        return time.time() - started.timestamp()
    return None


def tail(text: str, lines: int = 12) -> str:
    """The last ``lines`` lines of ``text``."""
    parts = text.rstrip().splitlines()
    if len(parts) <= lines:
        return "\n".join(parts)
    return "\n".join(["  ...", *parts[-lines:]])


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def echo_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, nothing else (for ``--json``)."""
    click.echo(dump_json(data))


def print_json_block(console: Console, data: Any) -> None:
    """Pretty JSON (coloured on a terminal)."""
    console.print_json(dump_json(data), highlight=console.is_terminal)


# ---- results ---------------------------------------------------------------------------------


def task_json(task: TaskResult, max_attempts: int | None) -> dict[str, Any]:
    return {
        "status": str(task.status),
        "attempts": task.attempts,
        "max_attempts": max_attempts,
        "recoveries": task.recoveries,
        "started_at": iso(task.started_at),
        "finished_at": iso(task.finished_at),
        "duration": None if task.duration is None else round(task.duration, 6),
        "error": task.error,
        "skip_reason": task.skip_reason,
    }


def result_json(
    result: WorkflowResult,
    max_attempts: Mapping[str, int] | None = None,
    events: list[EventRow] | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of a run (the ``--json`` output of ``run`` and ``show``)."""
    limits = max_attempts or {}
    data: dict[str, Any] = {
        "execution_id": result.execution_id,
        "workflow": result.workflow_name,
        "version": result.workflow_version,
        "package": result.package,
        "tenant": result.tenant,
        "status": str(result.status),
        "error": result.error,
        "started_at": iso(result.started_at),
        "finished_at": iso(result.finished_at),
        "duration": None if result.duration is None else round(result.duration, 6),
        "tasks": {tid: task_json(t, limits.get(tid)) for tid, t in result.tasks.items()},
        "final_context": result.final_context,
    }
    if events is not None:
        data["events"] = [event_json(e) for e in events]
    return data


def event_json(event: EventRow) -> dict[str, Any]:
    detail: Any = None
    if event.detail:
        try:
            detail = json.loads(event.detail)
        except ValueError:
            detail = event.detail
    return {
        "id": event.id,
        "time": iso(to_datetime(event.created_at)),
        "task": event.task_id,
        "event": event.event,
        "attempt": event.attempt,
        "detail": detail,
    }


def new_table(title: str) -> Table:
    """A compact table (no vertical borders) with a bold title on the left."""
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )


def render_header(console: Console, result: WorkflowResult) -> None:
    """The run's id, workflow, version, status, times and error."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("execution", Text(result.execution_id))
    workflow = Text(result.workflow_name)
    if result.package != "embedded" or result.tenant != "public":
        workflow.append(f"  ({result.tenant}::{result.package})", style="dim")
    grid.add_row("workflow", workflow)
    grid.add_row("version", Text(result.workflow_version[:12]))
    grid.add_row("status", status_text(result.status))
    grid.add_row("started", fmt_time(result.started_at))
    grid.add_row("finished", fmt_time(result.finished_at))
    grid.add_row(
        "duration", fmt_duration(elapsed(result.started_at, result.finished_at, result.status))
    )
    if result.error:
        grid.add_row("error", Text(result.error, style="red"))
    console.print(grid)


def render_tasks(
    console: Console,
    result: WorkflowResult,
    max_attempts: Mapping[str, int] | None = None,
    *,
    recoveries: bool | None = None,
) -> None:
    """One row per task: status, attempts, (recoveries,) duration, error or skip reason.

    ``recoveries=None`` shows that column only when a task was recovered.
    """
    limits = max_attempts or {}
    show_recoveries = (
        any(t.recoveries for t in result.tasks.values()) if recoveries is None else recoveries
    )
    table = new_table("Tasks")
    table.add_column("task", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right", no_wrap=True)
    if show_recoveries:
        table.add_column("recoveries", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("error / skip reason", overflow="fold")
    for tid, t in result.tasks.items():
        limit = limits.get(tid)
        attempts = f"{t.attempts}/{limit}" if limit else str(t.attempts)
        if t.error:
            note = Text(t.error, style="red")
        elif t.skip_reason:
            note = Text(t.skip_reason, style="yellow")
        else:
            note = Text("")
        cells: list[Text | str] = [Text(tid), status_text(t.status), attempts]
        if show_recoveries:
            cells.append(str(t.recoveries))
        cells.append(fmt_duration(elapsed(t.started_at, t.finished_at, t.status)))
        cells.append(note)
        table.add_row(*cells)
    console.print(table)


def render_tracebacks(console: Console, result: WorkflowResult, lines: int = 12) -> None:
    """The traceback tails of the run's failed tasks."""
    for tid, t in result.tasks.items():
        if t.status == TaskStatus.FAILED and t.traceback:
            console.print(Text(f"Traceback of failed task {tid!r} (last lines):", style="bold"))
            console.print(Text(tail(t.traceback, lines), style="dim"))


def render_context(console: Console, title: str, data: Mapping[str, Any]) -> None:
    console.print(Text(title, style="bold"))
    if data:
        print_json_block(console, dict(data))
    else:
        console.print(Text("(empty)", style="dim"))


# ---- events ----------------------------------------------------------------------------------
def event_detail(event: EventRow) -> str:
    """An event's detail as ``key=value`` pairs."""
    if not event.detail:
        return ""
    try:
        detail = json.loads(event.detail)
    except ValueError:
        return event.detail
    if not isinstance(detail, dict):
        return str(detail)
    parts = []
    for key, value in detail.items():
        if key in ("duration", "retry_in") and isinstance(value, int | float):
            parts.append(f"{key}={fmt_duration(float(value))}")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def render_events(console: Console, events: list[EventRow], start: float | None) -> None:
    """The event log of a run, times relative to ``start`` (epoch seconds)."""
    table = new_table("Events")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("task", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    base = start if start is not None else (events[0].created_at if events else 0.0)
    for e in events:
        table.add_row(
            f"+{e.created_at - base:.3f}s",
            Text(e.task_id or "-"),
            Text(e.event, style=event_style(e.event)),
            "" if e.attempt is None else str(e.attempt),
            Text(event_detail(e)),
        )
    console.print(table)


def event_style(name: str) -> str:
    if name.endswith(("_completed",)):
        return "green"
    if name.endswith(("_failed",)):
        return "red"
    if name.endswith(("_skipped", "_retry_scheduled", "_paused", "_cancelled")):
        return "yellow"
    return "cyan"


class EventPrinter:
    """Prints a run's events as they happen, one line each."""

    def __init__(self, console: Console, start: float, indent: str = "  ") -> None:
        self.console = console
        self.start = start
        self.indent = indent
        ok = fancy(console)
        self.marks = {
            "started": "▶" if ok else ">",
            "completed": "✓" if ok else "+",
            "failed": "✗" if ok else "x",
            "skipped": "↷" if ok else "~",
            "retry": "↻" if ok else "r",
            "run": "●" if ok else "*",
        }

    def __call__(self, event: EventRow) -> None:
        line = Text(self.indent)
        line.append(f"[+{max(0.0, event.created_at - self.start):6.2f}s] ", style="dim")
        detail = _detail_dict(event)
        name = event.event
        task = event.task_id or ""
        attempt = f" (attempt {event.attempt})" if event.attempt else ""
        if name == "task_started":
            line.append(f"{self.marks['started']} {task} started{attempt}", style="cyan")
        elif name == "task_completed":
            took = detail.get("duration")
            took_s = f" in {fmt_duration(float(took))}" if isinstance(took, int | float) else ""
            line.append(f"{self.marks['completed']} {task} completed{took_s}", style="green")
            line.append(attempt, style="dim")
        elif name == "task_retry_scheduled":
            wait = detail.get("retry_in")
            wait_s = (
                f", retrying in {fmt_duration(float(wait))}"
                if isinstance(wait, int | float)
                else ""
            )
            line.append(
                f"{self.marks['retry']} {task} failed{attempt}: {detail.get('error')}{wait_s}",
                style="yellow",
            )
        elif name == "task_failed":
            line.append(
                f"{self.marks['failed']} {task} failed{attempt}: {detail.get('error')}",
                style="bold red",
            )
        elif name == "task_skipped":
            line.append(
                f"{self.marks['skipped']} {task} skipped: {detail.get('reason')}", style="yellow"
            )
        else:
            label = name.replace("_", " ")
            if task:
                label = f"{task} {label}"
            line.append(f"{self.marks['run']} {label}", style=event_style(name) + " bold")
        self.console.print(line)


def _detail_dict(event: EventRow) -> dict[str, Any]:
    if not event.detail:
        return {}
    try:
        detail = json.loads(event.detail)
    except ValueError:
        return {"detail": event.detail}
    return detail if isinstance(detail, dict) else {"detail": detail}


def follow(
    runner: DefaultRunner,
    execution_id: str,
    on_event: Callable[[EventRow], None],
    *,
    timeout: float | None = None,
    interval: float = 0.05,
) -> WorkflowResult:
    """Wait for a run to end, calling ``on_event`` for each of its events as they are stored.

    Raises :class:`ExecutionTimeoutError` when ``timeout`` seconds pass first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    after = 0
    while True:
        status = runner.store.execution_status(execution_id)
        for event in runner.store.get_events(execution_id, after_id=after):
            after = event.id
            on_event(event)
        if status is None or status in TERMINAL_EXECUTION:
            return runner.get_execution(execution_id)
        if deadline is not None and time.monotonic() >= deadline:
            raise ExecutionTimeoutError(
                f"workflow execution {execution_id} is still {status} after {timeout:g}s"
            )
        time.sleep(interval)


# ---- executions ------------------------------------------------------------------------------
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


def exit_code_for(status: str) -> int:
    return 0 if status == ExecutionStatus.COMPLETED else 1
