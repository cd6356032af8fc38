"""Following a run as it happens: waiting for it to end while printing its events."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from cloacina.cli.consoles import fancy
from cloacina.cli.formatting import escape_controls, fmt_duration
from cloacina.cli.render import event_style
from cloacina.errors import ExecutionNotFoundError, ExecutionTimeoutError
from cloacina.model.status import TERMINAL_EXECUTION, WorkflowResult
from cloacina.runner import DefaultRunner
from cloacina.service.types import ExecutionEvent

if TYPE_CHECKING:
    from cloacina.cli.remote import Service


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

    def __call__(self, event: ExecutionEvent) -> None:
        line = Text(self.indent)
        at = event.at.timestamp()
        line.append(f"[+{max(0.0, at - self.start):6.2f}s] ", style="dim")

        def add(text: str, style: str) -> None:
            # One line per event: a task's error or skip reason is escaped (newlines too).
            line.append(escape_controls(text), style=style)

        detail = event.detail
        name = event.type
        task = event.task_id or ""
        attempt = f" (attempt {event.attempt})" if event.attempt else ""
        if name == "task_started":
            add(f"{self.marks['started']} {task} started{attempt}", "cyan")
        elif name == "task_completed":
            took = detail.get("duration")
            took_s = f" in {fmt_duration(float(took))}" if isinstance(took, int | float) else ""
            add(f"{self.marks['completed']} {task} completed{took_s}", "green")
            add(attempt, "dim")
        elif name == "task_retry_scheduled":
            wait = detail.get("retry_in")
            wait_s = (
                f", retrying in {fmt_duration(float(wait))}"
                if isinstance(wait, int | float)
                else ""
            )
            add(
                f"{self.marks['retry']} {task} failed{attempt}: {detail.get('error')}{wait_s}",
                style="yellow",
            )
        elif name == "task_failed":
            add(
                f"{self.marks['failed']} {task} failed{attempt}: {detail.get('error')}",
                style="bold red",
            )
        elif name == "task_skipped":
            add(f"{self.marks['skipped']} {task} skipped: {detail.get('reason')}", style="yellow")
        else:
            label = name.replace("_", " ")
            if task:
                label = f"{task} {label}"
            add(f"{self.marks['run']} {label}", event_style(name) + " bold")
        self.console.print(line)


def follow(
    runner: Service,
    execution_id: str,
    on_event: Callable[[ExecutionEvent], None],
    *,
    timeout: float | None = None,
    interval: float = 0.05,
) -> WorkflowResult:
    """Wait for a run to end, calling ``on_event`` for each of its events as they are stored
    (through a server: as its event stream delivers them).

    Raises :class:`ExecutionTimeoutError` when ``timeout`` seconds pass first.
    """
    if not isinstance(runner, DefaultRunner):
        for event in runner.stream_events(execution_id, timeout=timeout):
            on_event(event)
        return runner.get_execution(execution_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    after = 0
    while True:
        try:
            status: str | None = runner.get_execution_status(execution_id)
        except ExecutionNotFoundError:
            status = None
        for event in runner.get_events(execution_id, after=after) if status else []:
            after = event.seq
            on_event(event)
        if status is None or status in TERMINAL_EXECUTION:
            return runner.get_execution(execution_id)
        if deadline is not None and time.monotonic() >= deadline:
            raise ExecutionTimeoutError(
                f"workflow execution {execution_id} is still {status} after {timeout:g}s"
            )
        time.sleep(interval)
