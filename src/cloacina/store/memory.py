"""An in-memory run store: the scheduler's rules, unit-tested without a database.

:class:`MemoryRunStore` implements :class:`RunStore` and :class:`ExecutionQueries` in plain
Python, with the same semantics as the SQL stores: claims fenced by their token, one
transaction at a time (a failed block leaves nothing behind), every finished attempt
recorded when a task leaves ``running``. It is not a backend for real runs (nothing
survives the process); it is the twin that keeps the rules honest and fast to test.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from cloacina.errors import StoreError
from cloacina.model.status import TERMINAL_TASK, ExecutionStatus, TaskStatus
from cloacina.store.base import ExecutionQueries, RunStore, WriteTx
from cloacina.store.records import (
    PLAIN_RUN,
    AttemptRow,
    Claim,
    DependentState,
    EventRow,
    ExecutionRow,
    NewEvent,
    NewTask,
    ReadyTask,
    RunOrigin,
    RunProgress,
    StaleClaim,
    TaskRow,
    WorkflowKey,
)


@dataclass
class _Run:
    id: str
    tenant: str
    package: str
    workflow_name: str
    workflow_version: str
    status: str
    input_context: str
    tasks_total: int
    tasks_remaining: int
    created_at: float
    package_id: str | None
    tasks_failed: int = 0
    final_context: str | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    origin: RunOrigin = PLAIN_RUN


@dataclass
class _Task:
    id: int
    execution_id: str
    task_id: str
    task_index: int
    status: str
    max_attempts: int
    dependencies: tuple[str, ...]
    deps_total: int
    deps_remaining: int
    attempt: int = 0
    recovery_count: int = 0
    deps_failed: int = 0
    deps_skipped: int = 0
    claim_token: str | None = None
    worker_id: str | None = None
    heartbeat_at: float | None = None
    retry_at: float | None = None
    error: str | None = None
    error_traceback: str | None = None
    skip_reason: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    priority: int = 0


@dataclass
class _State:
    runs: dict[str, _Run] = field(default_factory=dict)
    tasks: dict[int, _Task] = field(default_factory=dict)
    by_name: dict[tuple[str, str], int] = field(default_factory=dict)
    outputs: dict[int, str] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    #: Worker heartbeats by worker id (what the SQL stores keep in ``workers``).
    heartbeats: dict[str, float] = field(default_factory=dict)


class MemoryWriteTx(WriteTx):
    """The writes of one transaction, on the store's state (restored if the block fails)."""

    def __init__(self, state: _State, tokens: Iterator[str], ids: Iterator[int]) -> None:
        self._s = state
        self._tokens = tokens
        self._ids = ids

    # ---- helpers ---------------------------------------------------------------------------
    def _task(self, execution_id: str, task_id: str) -> _Task | None:
        row_id = self._s.by_name.get((execution_id, task_id))
        return None if row_id is None else self._s.tasks[row_id]

    def _held(self, claim: Claim) -> _Task | None:
        t = self._s.tasks.get(claim.row_id)
        if t is None or t.status != "running" or t.claim_token != claim.claim_token:
            return None
        return t

    def _leave_running(self, t: _Task, outcome: str, now: float) -> None:
        """What the SQL stores' trigger does: record the attempt that just ended."""
        self._s.attempts.append(
            AttemptRow(
                len(self._s.attempts) + 1,
                t.execution_id,
                t.task_id,
                t.attempt,
                t.recovery_count,
                outcome,
                t.worker_id,
                t.started_at,
                t.finished_at if t.finished_at is not None else now,
                t.error,
                t.error_traceback,
                t.skip_reason,
            )
        )

    def _run(self, execution_id: str) -> _Run:
        run = self._s.runs.get(execution_id)
        if run is None:
            raise StoreError(f"workflow execution {execution_id!r} vanished from the database")
        return run

    # ---- runs and claims -------------------------------------------------------------------
    def create_execution(
        self,
        execution_id: str,
        *,
        tenant: str,
        package: str,
        workflow_name: str,
        workflow_version: str,
        input_json: str,
        tasks: Sequence[NewTask],
        now: float,
        package_id: str | None = None,
        deadline_at: float | None = None,  # deadlines need the SQL stores' liveness queries
        origin: RunOrigin | None = None,
    ) -> None:
        if execution_id in self._s.runs:
            raise StoreError(f"workflow execution {execution_id!r} exists already")
        self._s.runs[execution_id] = _Run(
            execution_id,
            tenant,
            package,
            workflow_name,
            workflow_version,
            "running",
            input_json,
            len(tasks),
            len(tasks),
            now,
            package_id,
            started_at=now,
            origin=PLAIN_RUN if origin is None else origin,
        )
        self._insert(execution_id, tasks, initial=True)

    def _insert(self, execution_id: str, tasks: Sequence[NewTask], initial: bool) -> None:
        for spec in tasks:
            if (execution_id, spec.task_id) in self._s.by_name:
                raise StoreError(f"task {spec.task_id!r} exists already in {execution_id!r}")
            row_id = next(self._ids)
            deps = len(spec.dependencies)
            self._s.tasks[row_id] = _Task(
                row_id,
                execution_id,
                spec.task_id,
                spec.index,
                "pending" if deps or not initial else "ready",
                spec.max_attempts,
                spec.dependencies,
                deps,
                deps,
                priority=self._s.runs[execution_id].origin.priority,
            )
            self._s.by_name[(execution_id, spec.task_id)] = row_id

    def claim_ready(
        self, limit: int, workflow_keys: Sequence[WorkflowKey], worker_id: str, now: float
    ) -> list[Claim]:
        if limit <= 0 or not workflow_keys:
            return []
        keys = set(workflow_keys)
        found: list[ReadyTask] = []
        # Higher priority first, then in order (as the SQL stores' ready index).
        for t in sorted(self._s.tasks.values(), key=lambda t: (-t.priority, t.id)):
            run = self._s.runs[t.execution_id]
            if (
                t.status == "ready"
                and (t.retry_at is None or t.retry_at <= now)
                and run.status == "running"
                and (run.workflow_name, run.workflow_version) in keys
            ):
                found.append(
                    ReadyTask(
                        t.id,
                        t.execution_id,
                        t.task_id,
                        run.workflow_name,
                        run.workflow_version,
                        t.deps_total,
                        t.deps_failed,
                        t.deps_skipped,
                    )
                )
                if len(found) == limit:
                    break
        return self._claim(found, "ready", worker_id, now)

    def claim_pending(self, ready: Sequence[ReadyTask], worker_id: str, now: float) -> list[Claim]:
        return self._claim(ready, "pending", worker_id, now)

    def _claim(
        self, rows: Sequence[ReadyTask], from_status: str, worker_id: str, now: float
    ) -> list[Claim]:
        claims = []
        for r in rows:
            t = self._s.tasks.get(r.row_id)
            if t is None or t.status != from_status:
                continue
            token = next(self._tokens)
            t.status, t.attempt, t.claim_token, t.worker_id = (
                "running",
                t.attempt + 1,
                token,
                worker_id,
            )
            t.started_at, t.retry_at, t.heartbeat_at, t.finished_at = now, None, now, None
            claims.append(
                Claim(
                    t.id,
                    t.execution_id,
                    t.task_id,
                    t.attempt,
                    t.recovery_count,
                    token,
                    r.workflow_name,
                    r.workflow_version,
                    now,
                    r.deps_total,
                    r.deps_failed,
                    r.deps_skipped,
                    priority=t.priority,
                )
            )
        return claims

    def finish_task(
        self,
        claim: Claim,
        status: TaskStatus,
        now: float,
        *,
        error: str | None = None,
        traceback: str | None = None,
        skip_reason: str | None = None,
    ) -> bool:
        t = self._held(claim)
        if t is None:
            return False
        t.status, t.finished_at, t.error = status, now, error
        t.error_traceback, t.skip_reason = traceback, skip_reason
        t.claim_token = t.heartbeat_at = None
        if status != TaskStatus.COMPLETED:  # a completed attempt stays in its row
            self._leave_running(t, status, now)
        return True

    def schedule_retry(
        self, claim: Claim, retry_at: float, error: str, traceback: str | None, now: float
    ) -> bool:
        t = self._held(claim)
        if t is None:
            return False
        t.error, t.error_traceback = error, traceback
        self._leave_running(t, "failed", now)
        t.status, t.retry_at = "ready", retry_at
        t.claim_token = t.worker_id = t.heartbeat_at = None
        return True

    def save_output(self, row_id: int, execution_id: str, task_id: str, context_json: str) -> None:
        self._s.outputs[row_id] = context_json

    def bump_dependents(
        self, execution_id: str, task_ids: Sequence[str], failed: int, skipped: int
    ) -> list[DependentState]:
        out = []
        for task_id in task_ids:
            t = self._task(execution_id, task_id)
            if t is None or t.status != "pending":
                continue
            t.deps_remaining -= 1
            t.deps_failed += failed
            t.deps_skipped += skipped
            out.append(_state(t))
        return out

    def mark_ready(self, row_ids: Sequence[int]) -> None:
        for row_id in row_ids:
            t = self._s.tasks.get(row_id)
            if t is not None and t.status == "pending":
                t.status = "ready"

    def mark_skipped(self, row_id: int, reason: str, now: float) -> bool:
        t = self._s.tasks.get(row_id)
        if t is None or t.status not in ("pending", "ready"):
            return False
        t.status, t.skip_reason, t.finished_at = "skipped", reason, now
        return True

    def run_progress(self, execution_id: str, settled: int, failed: int, now: float) -> RunProgress:
        run = self._run(execution_id)
        run.tasks_remaining -= settled
        run.tasks_failed += failed
        return RunProgress(ExecutionStatus(run.status), run.tasks_remaining, run.tasks_failed)

    def finish_run(
        self,
        execution_id: str,
        status: ExecutionStatus,
        now: float,
        *,
        final_json: str | None,
        error: str | None,
    ) -> bool:
        run = self._s.runs.get(execution_id)
        if run is None or run.status not in ("running", "paused"):
            return False
        run.status, run.final_context, run.error, run.finished_at = status, final_json, error, now
        return True

    def add_events(self, events: Sequence[NewEvent]) -> None:
        for e in events:
            self._s.events.append(
                EventRow(
                    len(self._s.events) + 1,
                    e.execution_id,
                    e.task_id,
                    e.event,
                    e.attempt,
                    e.detail,
                    e.created_at,
                )
            )

    def hand_back(self, claims: Sequence[Claim]) -> list[Claim]:
        back = []
        for claim in claims:
            t = self._held(claim)
            if t is not None:  # not an attempt: nothing recorded
                t.status, t.attempt = "ready", t.attempt - 1
                t.claim_token = t.worker_id = t.heartbeat_at = None
                back.append(claim)
        return back

    def _still_stale(self, t: _Task, max_age: float) -> bool:
        beat = self._s.heartbeats.get(t.worker_id or "", t.heartbeat_at)
        return beat is not None and beat < time.time() - max_age

    def requeue_stale(self, stale: StaleClaim, max_age: float) -> bool:
        t = self._s.tasks.get(stale.row_id)
        if (
            t is None
            or t.status != "running"
            or t.claim_token != stale.claim_token
            or not self._still_stale(t, max_age)
        ):
            return False
        self._leave_running(t, "lost", time.time())
        t.status, t.recovery_count, t.attempt = "ready", t.recovery_count + 1, t.attempt - 1
        t.claim_token = t.worker_id = t.heartbeat_at = None
        return True

    def fail_stale(self, stale: StaleClaim, error: str, now: float, max_age: float) -> bool:
        t = self._s.tasks.get(stale.row_id)
        if (
            t is None
            or t.status != "running"
            or t.claim_token != stale.claim_token
            or not self._still_stale(t, max_age)
        ):
            return False
        t.status, t.error, t.finished_at = "failed", error, now
        t.claim_token = t.heartbeat_at = None
        self._leave_running(t, "failed", now)
        return True

    def get_outputs(self, execution_id: str, task_ids: Sequence[str]) -> dict[str, str]:
        out = {}
        for task_id in task_ids:
            t = self._task(execution_id, task_id)
            if t is not None and t.id in self._s.outputs:
                out[task_id] = self._s.outputs[t.id]
        return out

    def failed_task_errors(self, execution_id: str) -> list[tuple[str, str | None]]:
        tasks = [t for t in self._s.tasks.values() if t.execution_id == execution_id]
        return [
            (t.task_id, t.error)
            for t in sorted(tasks, key=lambda t: t.task_index)
            if t.status == "failed"
        ]

    def get_input(self, execution_id: str) -> str:
        run = self._s.runs.get(execution_id)
        return (run.input_context if run else None) or "{}"

    def lock_run_status(self, execution_id: str) -> ExecutionStatus | None:
        run = self._s.runs.get(execution_id)
        return None if run is None else ExecutionStatus(run.status)

    def set_run_status(
        self,
        execution_id: str,
        status: ExecutionStatus,
        from_statuses: Sequence[ExecutionStatus],
        now: float,
    ) -> bool:
        run = self._s.runs.get(execution_id)
        if run is None or run.status not in from_statuses:
            return False
        run.status = status
        return True

    def cancel_tasks(self, execution_id: str, reason: str, now: float) -> list[str]:
        running, count = [], 0
        for t in self._s.tasks.values():
            if t.execution_id != execution_id or t.status not in ("pending", "ready", "running"):
                continue
            was_running = t.status == "running"
            t.status, t.skip_reason, t.finished_at = "skipped", reason, now
            t.claim_token = t.heartbeat_at = None
            if was_running:
                running.append(t.task_id)
                self._leave_running(t, "skipped", now)
            count += 1
        self._run(execution_id).tasks_remaining -= count
        return running

    # ---- changing a run's graph ------------------------------------------------------------
    def reset_tasks(
        self, execution_id: str, task_ids: Sequence[str], now: float
    ) -> list[DependentState]:
        wanted = set(task_ids)
        for task_id in wanted:
            t = self._task(execution_id, task_id)
            if t is None:
                raise StoreError(f"workflow execution {execution_id!r} has no task {task_id!r}")
            self._s.outputs.pop(t.id, None)
            if t.status == TaskStatus.COMPLETED:  # its row held the attempt: keep it
                self._leave_running(t, TaskStatus.COMPLETED, now)
            t.status = "pending"
            t.claim_token = t.worker_id = t.heartbeat_at = t.retry_at = None
            t.error = t.error_traceback = t.skip_reason = None
            t.started_at = t.finished_at = None
        return [st for st in self._recount(execution_id) if st.task_id in wanted]

    def add_tasks(
        self, execution_id: str, tasks: Sequence[NewTask], now: float
    ) -> list[DependentState]:
        self._insert(execution_id, tasks, initial=False)
        added = {t.task_id for t in tasks}
        return [st for st in self._recount(execution_id) if st.task_id in added]

    def _recount(self, execution_id: str) -> list[DependentState]:
        tasks = [t for t in self._s.tasks.values() if t.execution_id == execution_id]
        status_of = {t.task_id: t.status for t in tasks}
        states = []
        for t in sorted(tasks, key=lambda t: (t.task_index, t.id)):
            if t.status != "pending":
                continue
            settled = [status_of.get(d) for d in t.dependencies]
            t.deps_total = len(t.dependencies)
            t.deps_remaining = sum(1 for st in settled if st not in TERMINAL_TASK)
            t.deps_failed = settled.count("failed")
            t.deps_skipped = settled.count("skipped")
            states.append(_state(t))
        run = self._run(execution_id)
        statuses = list(status_of.values())
        run.status, run.final_context, run.error, run.finished_at = "running", None, None, None
        run.tasks_total = len(statuses)
        run.tasks_remaining = sum(1 for st in statuses if st not in TERMINAL_TASK)
        run.tasks_failed = statuses.count("failed")
        return states


def _state(t: _Task) -> DependentState:
    return DependentState(
        t.id, t.task_id, t.deps_total, t.deps_remaining, t.deps_failed, t.deps_skipped
    )


class MemoryRunStore(RunStore, ExecutionQueries):
    """Runs kept in memory (see the module's docstring). Thread-safe."""

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.RLock()
        self._tokens = (f"mem-{n}" for n in itertools.count(1))
        self._ids = itertools.count(1)

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        with self._lock:
            saved = copy.deepcopy(self._state)
            try:
                yield MemoryWriteTx(self._state, self._tokens, self._ids)
            except BaseException:
                self._state = saved
                raise

    def heartbeat(self, worker_id: str, at: float) -> None:
        """A worker's heartbeat (what ``workers.last_heartbeat`` holds in the SQL stores)."""
        with self._lock:
            self._state.heartbeats[worker_id] = at

    # ---- the engine's reads ----------------------------------------------------------------
    def find_stale(self, max_age: float, limit: int = 100) -> list[StaleClaim]:
        with self._lock:
            s = self._state
            cutoff = time.time() - max_age
            out = []
            for t in sorted(s.tasks.values(), key=lambda t: t.id):
                beat = s.heartbeats.get(t.worker_id or "", t.heartbeat_at)
                if t.status == "running" and beat is not None and beat < cutoff:
                    run = s.runs[t.execution_id]
                    assert t.claim_token is not None
                    out.append(
                        StaleClaim(
                            t.id,
                            t.execution_id,
                            t.task_id,
                            t.recovery_count,
                            t.attempt,
                            run.workflow_name,
                            run.workflow_version,
                            t.claim_token,
                        )
                    )
            return out[:limit]

    def runs_waiting_for_code(
        self, names: Sequence[str], known: Sequence[WorkflowKey], limit: int = 20
    ) -> list[tuple[str, str, str]]:
        with self._lock:
            s = self._state
            found = {
                (r.id, r.workflow_name, r.workflow_version)
                for t in s.tasks.values()
                if t.status == "ready"
                and (r := s.runs[t.execution_id]).status == "running"
                and r.workflow_name in names
                and (r.workflow_name, r.workflow_version) not in set(known)
            }
            return sorted(found)[:limit]

    def has_ready(self, now: float, workflow_keys: Sequence[WorkflowKey]) -> bool:
        with self._lock:
            keys = set(workflow_keys)
            s = self._state
            return any(
                t.status == "ready"
                and (t.retry_at is None or t.retry_at <= now)
                and s.runs[t.execution_id].status == "running"
                and (s.runs[t.execution_id].workflow_name, s.runs[t.execution_id].workflow_version)
                in keys
                for t in s.tasks.values()
            )

    # ---- the faces' reads ------------------------------------------------------------------
    def get_execution(self, execution_id: str) -> ExecutionRow | None:
        with self._lock:
            run = self._state.runs.get(execution_id)
            return None if run is None else _execution_row(run)

    def get_tasks(self, execution_id: str, task_id: str | None = None) -> list[TaskRow]:
        with self._lock:
            tasks = [
                t
                for t in self._state.tasks.values()
                if t.execution_id == execution_id and task_id in (None, t.task_id)
            ]
            return [
                TaskRow(
                    t.id,
                    t.execution_id,
                    t.task_id,
                    t.task_index,
                    TaskStatus(t.status),
                    t.attempt,
                    t.max_attempts,
                    t.recovery_count,
                    t.error,
                    t.error_traceback,
                    t.skip_reason,
                    t.retry_at,
                    t.worker_id,
                    t.heartbeat_at,
                    t.started_at,
                    t.finished_at,
                    json.dumps(list(t.dependencies), separators=(",", ":")),
                )
                for t in sorted(tasks, key=lambda t: (t.task_index, t.id))
            ]

    def get_attempts(self, execution_id: str, task_id: str | None = None) -> list[AttemptRow]:
        with self._lock:
            kept = [
                a
                for a in self._state.attempts
                if a.execution_id == execution_id and task_id in (None, a.task_id)
            ]
            current = [
                AttemptRow(
                    0,
                    t.execution_id,
                    t.task_id,
                    t.attempt,
                    t.recovery_count,
                    t.status,
                    t.worker_id,
                    t.started_at,
                    t.finished_at or 0.0,
                    t.error,
                    t.error_traceback,
                    t.skip_reason,
                )
                for t in self._state.tasks.values()
                if t.execution_id == execution_id
                and t.status == TaskStatus.COMPLETED
                and task_id in (None, t.task_id)
            ]
            return sorted(kept + current, key=lambda a: (a.finished_at, a.id == 0, a.id))

    def get_events(self, execution_id: str, after_id: int = 0) -> list[EventRow]:
        with self._lock:
            return [
                e for e in self._state.events if e.execution_id == execution_id and e.id > after_id
            ]

    def get_outputs(self, execution_id: str, task_ids: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return MemoryWriteTx(self._state, self._tokens, self._ids).get_outputs(
                execution_id, task_ids
            )

    def list_executions(
        self,
        *,
        limit: int = 50,
        status: str | None = None,
        workflow_name: str | None = None,
        since: float | None = None,
        until: float | None = None,
        q: str | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRow]:
        text = q.lower() if q else None
        with self._lock:
            runs = [
                r
                for r in self._state.runs.values()
                if (status is None or r.status == status)
                and (workflow_name is None or r.workflow_name == workflow_name)
                and (since is None or r.created_at >= since)
                and (until is None or r.created_at < until)
                and (text is None or text in r.id.lower() or text in (r.error or "").lower())
                and (before is None or (r.created_at, r.id) < before)
            ]
            runs.sort(key=lambda r: (r.created_at, r.id), reverse=True)
            return [_execution_row(r) for r in runs[:limit]]

    def find_executions(self, id_prefix: str, limit: int = 10) -> list[ExecutionRow]:
        with self._lock:
            runs = [r for r in self._state.runs.values() if r.id.startswith(id_prefix)]
            runs.sort(key=lambda r: r.created_at, reverse=True)
            return [_execution_row(r) for r in runs[:limit]]

    def execution_status(self, execution_id: str) -> ExecutionStatus | None:
        with self._lock:
            run = self._state.runs.get(execution_id)
            return None if run is None else ExecutionStatus(run.status)

    def count_unfinished(self) -> int:
        with self._lock:
            return sum(1 for r in self._state.runs.values() if r.status in ("running", "paused"))

    def count_executions_by_status(
        self,
        *,
        workflow_name: str | None = None,
        since: float | None = None,
        until: float | None = None,
        q: str | None = None,
    ) -> dict[str, int]:
        rows = self.list_executions(
            limit=len(self._state.runs) + 1,
            workflow_name=workflow_name,
            since=since,
            until=until,
            q=q,
        )
        counts: dict[str, int] = {}
        for row in rows:
            counts[str(row.status)] = counts.get(str(row.status), 0) + 1
        return counts


def _execution_row(run: _Run) -> ExecutionRow:
    return ExecutionRow(
        run.id,
        run.tenant,
        run.package,
        run.workflow_name,
        run.workflow_version,
        ExecutionStatus(run.status),
        run.input_context,
        run.final_context,
        run.error,
        run.tasks_total,
        run.tasks_remaining,
        run.tasks_failed,
        run.created_at,
        run.started_at,
        run.finished_at,
    )
