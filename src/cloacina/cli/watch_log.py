"""``executions watch`` without a terminal (a pipe, a file): the run's event log as plain
lines, one per thing that happened, in the order it happened."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.text import Text

from cloacina.cli.formatting import escape_controls, fmt_duration
from cloacina.cli.watch_view import SETTLED, first_line, run_elapsed, status_counts, tasks_word
from cloacina.model.status import WorkflowResult
from cloacina.service.types import ExecutionEvent

#: Run events the plain log leaves to its last line (which says how the run ended).
_ENDINGS = frozenset({"execution_completed", "execution_failed"})


class ChangePrinter:
    """``executions watch`` without a terminal: one plain line per event of the run, in
    event order (so a replay of a run's history interleaves its tasks as they ran, as a log
    does), times relative to the run's start; a note when the run is stuck."""

    def __init__(self, console: Console) -> None:
        self.console = console
        #: The id of the last event printed (the next read starts after it).
        self.after = 0
        self.recoveries: dict[str, int] = {}
        self.hint: str | None = None

    def _print(self, text: str) -> None:
        # One line per event: what came from a task is escaped, newlines included.
        self.console.print(Text(escape_controls(text)), soft_wrap=True)

    def _stamp(self, run: WorkflowResult, at: float | None) -> str:
        base_at = run.started_at if run.started_at is not None else run.created_at
        base = base_at.timestamp() if base_at is not None else time.time()
        when = at if at is not None else time.time()
        return f"[+{max(0.0, when - base):.2f}s]"

    def start(self, run: WorkflowResult) -> None:
        self._print(
            f"watching execution {run.execution_id} (workflow {run.workflow_name}, "
            f"{tasks_word(len(run.tasks) or run.tasks_total)}): {run.status}"
        )

    def update(self, run: WorkflowResult, events: Sequence[ExecutionEvent]) -> None:
        """Print ``events`` (the run's events after :attr:`after`, in sequence order)."""
        limits = {tid: t.max_attempts or 1 for tid, t in run.tasks.items()}
        for event in events:
            self.after = max(self.after, event.seq)
            text = self._event_text(event, limits)
            if text is not None:
                self._print(f"{self._stamp(run, event.at.timestamp())} {text}")

    def note(self, run: WorkflowResult, hint: str | None) -> None:
        """Say why the run is stuck, once, and again when that changes."""
        if hint != self.hint and hint is not None:
            self._print(f"{self._stamp(run, None)} note: {hint}")
        self.hint = hint

    def _attempt(self, event: ExecutionEvent, limits: Mapping[str, int]) -> str:
        tid, attempt = event.task_id or "", event.attempt or 0
        limit = limits.get(tid, 1)
        text = f"{attempt}/{limit}" if limit > 1 else str(attempt)
        if self.recoveries.get(tid):
            text += f", recovery {self.recoveries[tid]}"
        return text

    def _event_text(self, event: ExecutionEvent, limits: Mapping[str, int]) -> str | None:
        name, tid = event.type, event.task_id or ""
        detail = event.detail
        if name == "task_started":
            return f"{tid} running (attempt {self._attempt(event, limits)})"
        if name == "task_completed":
            took = detail.get("duration")
            text = f"{tid} completed"
            if isinstance(took, int | float):
                text += f" in {fmt_duration(float(took))}"
            if (event.attempt or 0) > 1:
                text += f" (attempt {self._attempt(event, limits)})"
            return text
        if name in ("task_failed", "task_retry_scheduled"):
            text = (
                f"{tid} failed (attempt {self._attempt(event, limits)}): "
                f"{first_line(_str(detail.get('error')))}"
            )
            wait = detail.get("retry_in")
            if name == "task_retry_scheduled" and isinstance(wait, int | float):
                text += f"; retrying in {fmt_duration(float(wait))}"
            return text
        if name == "task_skipped":
            return f"{tid} skipped: {_str(detail.get('reason')) or 'no reason recorded'}"
        if name == "task_recovered":
            recovery = detail.get("recovery")
            count = recovery if isinstance(recovery, int) else self.recoveries.get(tid, 0) + 1
            self.recoveries[tid] = count
            return (
                f"{tid} taken back from a worker that stopped responding (recovery {count}); "
                "ready again"
            )
        if name == "task_abandoned":
            error = first_line(_str(detail.get("error")))
            return f"{tid} abandoned: {error.removeprefix(f'task {tid!r} was abandoned: ')}"
        if name == "map_started":
            items, parallel = detail.get("instances"), detail.get("max_parallel")
            limit = f", at most {parallel} at once" if isinstance(parallel, int) else ""
            return f"{tid} mapped over {items} items{limit}"
        if name == "task_handed_back":
            return f"{tid} handed back by its worker; ready again"
        if name in _ENDINGS:
            return None
        if name == "execution_cancelled":  # its tasks are skipped without events of their own
            reason = _str(detail.get("reason"))
            return "execution cancelled" + (f": {first_line(reason)}" if reason else "")
        if name.startswith("execution_"):
            return f"execution {name.removeprefix('execution_').replace('_', ' ')}"
        return f"{tid} {name.replace('_', ' ')}".strip()

    def finish(self, run: WorkflowResult) -> None:
        tasks = list(run.tasks.values())
        counts = status_counts(tasks)
        parts = [f"{counts[s]} {s}" for s in ("completed", "failed", "skipped") if counts.get(s)]
        unsettled = len(tasks) - sum(counts.get(s, 0) for s in SETTLED)
        if unsettled:
            parts.append(f"{unsettled} not run")
        line = (
            f"execution {run.execution_id} {run.status} in {fmt_duration(run_elapsed(run))}: "
            f"{', '.join(parts) or 'no tasks'}"
        )
        if run.error:
            line += f"; error: {first_line(run.error)}"
        self._print(line)


def _str(value: object) -> str:
    return "" if value is None else str(value)
