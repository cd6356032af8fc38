"""Workflow statistics over recent runs: where the time goes (``cloacina workflows stats``).

``runner.workflow_stats(name, last=100)`` reads the ``last`` most recently created finished
(completed or failed) runs of a workflow and returns, per task, the p50/p95 of its attempts'
durations and of its queue wait, its failure rate, and the workflow's critical path.

Definitions (all from the database, so every worker's runs count):

- an attempt's *duration* is its start to its end, for every attempt whose body ran
  (completed or failed; retried attempts included, lost ones not);
- a task's *queue wait* is the time from it becoming ready (its last dependency's end, or
  the run's creation for a task without dependencies) to its first attempt's start; a
  retry's deliberate delay is not queue wait;
- a task's *failure rate* is the share of runs in which it ended failed (after its retries);
- the *critical path* of one run is the chain of tasks whose ends determined the run's end:
  from the task that ended last, back through the dependency that ended last, to a task
  without dependencies (with short queue waits, that is the longest path by duration).
  It is computed per run from the run's stored graph, and the path reported is the most
  common one among the runs (ties: the one with the longest mean time).
"""

from __future__ import annotations

import difflib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloacina.errors import RequestError, WorkflowNotFoundError
from cloacina.model.status import to_datetime

if TYPE_CHECKING:
    from cloacina.model.workflow import Workflow
    from cloacina.service.types import WorkflowInfo
    from cloacina.store.base import Store
    from cloacina.store.stats import AttemptTimes, RunTimes, TaskTimes

#: The most runs one statistics call reads.
MAX_RUNS = 10_000
#: Attempt outcomes whose body ran to an end (a lost attempt's end is when it was taken back).
_RAN = ("completed", "failed")


@dataclass(frozen=True)
class TaskStats:
    """One task over the runs read. Durations and waits are seconds (``None``: no sample)."""

    task_id: str
    #: Runs in which the task ended (completed, failed or skipped).
    runs: int
    completed: int
    failed: int
    skipped: int
    #: Attempts whose body ran (retries included).
    attempts: int
    #: ``failed / runs`` (0.0 without runs).
    failure_rate: float
    duration_p50: float | None
    duration_p95: float | None
    wait_p50: float | None
    wait_p95: float | None
    #: Runs whose critical path went through this task.
    critical_runs: int = 0


@dataclass(frozen=True)
class WorkflowStats:
    """A workflow's recent finished runs (see the module's docstring for the definitions)."""

    workflow_name: str
    #: Finished runs read (at most the ``last`` asked for), and how they ended.
    runs: int
    completed: int
    failed: int
    failure_rate: float
    #: Run durations (start to end), seconds.
    duration_p50: float | None
    duration_p95: float | None
    #: Creation times of the oldest and newest run read.
    first_run_at: datetime | None
    last_run_at: datetime | None
    #: Per task, in the workflow's order.
    tasks: list[TaskStats] = field(default_factory=list)
    #: The most common critical path, first task to last, and in how many runs it was.
    critical_path: list[str] = field(default_factory=list)
    critical_path_runs: int = 0
    #: Mean over those runs of the summed durations of the path's tasks (final attempts).
    critical_path_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly values (times as ISO 8601 text)."""
        data = asdict(self)
        for key in ("first_run_at", "last_run_at"):
            value = data[key]
            data[key] = None if value is None else value.isoformat().replace("+00:00", "Z")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkflowStats:
        """The stats from :meth:`to_dict`'s values (what the HTTP API sends)."""
        values = dict(data)
        for key in ("first_run_at", "last_run_at"):
            text = values.get(key)
            values[key] = None if text is None else datetime.fromisoformat(text)
        values["tasks"] = [TaskStats(**task) for task in values.get("tasks", [])]
        return cls(**values)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation between the
    nearest ranks (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class StatsService:
    """``workflow_stats``: a mixin of :class:`~cloacina.runner.DefaultRunner`."""

    if TYPE_CHECKING:
        store: Store

        def resolve(self, name: str | type | Workflow) -> Workflow: ...

        def describe_workflow(self, name: str) -> WorkflowInfo: ...

        def list_workflows(self) -> list[Workflow]: ...

    def workflow_stats(self, name: str, last: int = 100) -> WorkflowStats:
        """Statistics of the ``last`` (1 to 10,000) most recently created finished runs of
        workflow ``name``: per task p50/p95 duration and queue wait, failure rate, and the
        critical path (see :mod:`cloacina.service.stats`). A known workflow without
        finished runs gives zero runs; an unknown name (and no runs of it) raises
        :class:`~cloacina.errors.WorkflowNotFoundError` naming the nearest one."""
        if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= MAX_RUNS:
            raise RequestError(f"last must be a whole number from 1 to {MAX_RUNS}, not {last!r}")
        runs = self.store.recent_finished_runs(name, last)
        if not runs:
            self._known_workflow(name)
            return _empty(name)
        ids = [run.id for run in runs]
        tasks = self.store.task_times(ids)
        attempts = self.store.attempt_times(ids)
        fallback: dict[str, tuple[str, ...]] | None = None
        if any(t.dependencies_json is None for t in tasks):  # runs from before 0004
            try:
                wf = self.resolve(name)
                fallback = {tid: task.dependencies for tid, task in wf.tasks.items()}
            except WorkflowNotFoundError:
                fallback = {}
        return compute_stats(name, runs, tasks, attempts, fallback or {})

    def _known_workflow(self, name: str) -> None:
        """Raise :class:`WorkflowNotFoundError` naming the nearest name unless ``name`` is
        a workflow this runner knows or one with runs here."""
        try:
            self.describe_workflow(name)
            return
        except WorkflowNotFoundError:
            pass
        names = set(self.store.workflow_names_with_runs())
        if name in names:
            return  # it has runs, none finished yet
        names.update(wf.name for wf in self.list_workflows())
        near = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.5)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        known = ", ".join(sorted(names)[:20]) or "none"
        raise WorkflowNotFoundError(
            f"no workflow named {name!r} is known or has runs here{hint} (known: {known})"
        )


def _empty(name: str) -> WorkflowStats:
    return WorkflowStats(name, 0, 0, 0, 0.0, None, None, None, None)


def compute_stats(
    name: str,
    runs: Sequence[RunTimes],
    tasks: Sequence[TaskTimes],
    attempts: Sequence[AttemptTimes],
    fallback_graph: dict[str, tuple[str, ...]],
) -> WorkflowStats:
    """The statistics of these runs' rows (pure: no database)."""
    by_run: dict[str, dict[str, TaskTimes]] = {}
    for t in tasks:
        by_run.setdefault(t.execution_id, {})[t.task_id] = t
    tried: dict[tuple[str, str], list[AttemptTimes]] = {}
    for a in attempts:
        tried.setdefault((a.execution_id, a.task_id), []).append(a)

    order: dict[str, int] = {}  # task id -> its index in the newest run that has it
    durations: dict[str, list[float]] = {}
    waits: dict[str, list[float]] = {}
    ended: dict[str, Counter[str]] = {}
    ran: dict[str, int] = {}
    paths: Counter[tuple[str, ...]] = Counter()
    path_seconds: dict[tuple[str, ...], list[float]] = {}
    run_durations: list[float] = []
    for run in runs:  # newest first
        if run.started_at is not None and run.finished_at is not None:
            run_durations.append(max(0.0, run.finished_at - run.started_at))
        rows = by_run.get(run.id, {})
        graph = {
            tid: (
                tuple(json.loads(row.dependencies_json))
                if row.dependencies_json is not None
                else fallback_graph.get(tid, ())
            )
            for tid, row in rows.items()
        }
        for tid, row in rows.items():
            order.setdefault(tid, row.task_index)
            if row.status in ("completed", "failed", "skipped"):
                ended.setdefault(tid, Counter())[row.status] += 1
            earlier = tried.get((run.id, tid), [])
            spans = [
                (a.started_at, a.finished_at)
                for a in earlier
                if a.outcome in _RAN and a.started_at is not None
            ]
            if row.status == "completed" and row.started_at is not None and row.finished_at:
                spans.append((row.started_at, row.finished_at))
            ran[tid] = ran.get(tid, 0) + len(spans)
            durations.setdefault(tid, []).extend(max(0.0, end - start) for start, end in spans)
            starts = [a.started_at for a in earlier if a.started_at is not None]
            if row.started_at is not None:
                starts.append(row.started_at)
            ready = _ready_at(run, rows, graph.get(tid, ()))
            if starts and ready is not None:
                waits.setdefault(tid, []).append(max(0.0, min(starts) - ready))
        path = critical_path(rows, graph)
        if path:
            key = tuple(path)
            paths[key] += 1
            path_seconds.setdefault(key, []).append(
                sum(_span(rows[tid]) for tid in path if tid in rows)
            )

    best: tuple[str, ...] = ()
    if paths:
        best = max(paths, key=lambda p: (paths[p], _mean(path_seconds[p]) or 0.0))
    on_path: Counter[str] = Counter()
    for path_key, count in paths.items():
        for tid in path_key:
            on_path[tid] += count
    task_stats = []
    for tid in sorted(order, key=lambda t: (order[t], t)):
        counts = ended.get(tid, Counter())
        total = counts["completed"] + counts["failed"] + counts["skipped"]
        task_stats.append(
            TaskStats(
                task_id=tid,
                runs=total,
                completed=counts["completed"],
                failed=counts["failed"],
                skipped=counts["skipped"],
                attempts=ran.get(tid, 0),
                failure_rate=counts["failed"] / total if total else 0.0,
                duration_p50=percentile(durations.get(tid, []), 50),
                duration_p95=percentile(durations.get(tid, []), 95),
                wait_p50=percentile(waits.get(tid, []), 50),
                wait_p95=percentile(waits.get(tid, []), 95),
                critical_runs=on_path[tid],
            )
        )
    completed = sum(1 for r in runs if r.status == "completed")
    failed = sum(1 for r in runs if r.status == "failed")
    return WorkflowStats(
        workflow_name=name,
        runs=len(runs),
        completed=completed,
        failed=failed,
        failure_rate=failed / len(runs) if runs else 0.0,
        duration_p50=percentile(run_durations, 50),
        duration_p95=percentile(run_durations, 95),
        first_run_at=to_datetime(min(r.created_at for r in runs)) if runs else None,
        last_run_at=to_datetime(max(r.created_at for r in runs)) if runs else None,
        tasks=task_stats,
        critical_path=list(best),
        critical_path_runs=paths[best] if best else 0,
        critical_path_seconds=_mean(path_seconds[best]) if best else None,
    )


def critical_path(rows: dict[str, TaskTimes], graph: dict[str, tuple[str, ...]]) -> list[str]:
    """One run's critical path, first task to last: from the task whose body ended last,
    back through the dependency that ended last each time (empty if no task ran)."""
    ran = [t for t in rows.values() if t.started_at is not None and t.finished_at is not None]
    if not ran:
        return []
    current: TaskTimes | None = max(ran, key=lambda t: (t.finished_at or 0.0, t.task_index))
    path: list[str] = []
    seen: set[str] = set()
    while current is not None and current.task_id not in seen:
        path.append(current.task_id)
        seen.add(current.task_id)
        deps = [rows[d] for d in graph.get(current.task_id, ()) if d in rows]
        ended = [d for d in deps if d.finished_at is not None]
        current = max(ended, key=lambda t: (t.finished_at or 0.0, t.task_index)) if ended else None
    path.reverse()
    return path


def _ready_at(run: RunTimes, rows: dict[str, TaskTimes], deps: Sequence[str]) -> float | None:
    """When a task became ready: its last dependency's end, or the run's creation."""
    if not deps:
        return run.created_at
    ends = [rows[d].finished_at for d in deps if d in rows]
    if len(ends) < len(deps) or any(end is None for end in ends):
        return None
    return max(end for end in ends if end is not None)


def _span(row: TaskTimes) -> float:
    if row.started_at is None or row.finished_at is None:
        return 0.0
    return max(0.0, row.finished_at - row.started_at)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
