"""Why a watched run makes no progress: it is paused, or no live worker holds or could
start its tasks (what ``executions watch`` says about a stuck run)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cloacina.cli.execution_lookup import SHORT_ID
from cloacina.cli.formatting import fmt_time
from cloacina.model.status import TERMINAL_EXECUTION, ExecutionStatus, WorkflowResult
from cloacina.service.types import WorkerInfo

if TYPE_CHECKING:
    from cloacina.cli.remote import Service


def stall_hint(run: WorkflowResult, workers: Sequence[WorkerInfo], start_worker: str) -> str | None:
    """Why a run makes no progress, when the database can tell: it is paused, its running
    tasks are held by workers that stopped sending heartbeats, or its ready tasks wait and
    no worker is alive. ``None`` when nothing is wrong as far as can be seen. The text does
    not change while the situation does not (so a watcher says it once)."""
    if run.status == ExecutionStatus.PAUSED:
        return (
            "this run is paused: no new task of it starts until it is resumed with: "
            f"cloacina executions resume {run.execution_id[:SHORT_ID]}"
        )
    if run.status != ExecutionStatus.RUNNING:
        return None
    tasks = list(run.tasks.values())
    by_id = {w.id: w for w in workers}
    live = {w.id for w in workers if w.state == "running"}
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
                last = fmt_time(worker.last_heartbeat_at)
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

    def __init__(self, runner: Service, start_worker: str, every: float = 1.0) -> None:
        self.runner = runner
        self.start_worker = start_worker
        self.every = every
        self._workers: list[WorkerInfo] = []
        self._read_at: float | None = None

    def hint(self, run: WorkflowResult) -> str | None:
        if run.status in TERMINAL_EXECUTION:
            return None
        now = time.time()
        if self._read_at is None or now - self._read_at >= self.every:
            self._workers = self.runner.list_workers(include_stopped=True)
            self._read_at = now
        return stall_hint(run, self._workers, self.start_worker)
