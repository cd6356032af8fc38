"""The write transaction in SQL both SQLite and PostgreSQL run.

Statements are written once, in qmark style (``?``); each backend's :class:`Dialect` says
how its driver takes them and what else differs (the clock, row locks). Where the backends
differ more (claiming with ``FOR UPDATE SKIP LOCKED``), the PostgreSQL store overrides a
method. The reads are in ``store/sql_reads.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from cloacina.errors import StoreError
from cloacina.model.status import TERMINAL_TASK, ExecutionStatus, TaskStatus
from cloacina.store.alerts import AlertWrites
from cloacina.store.audit import AuditWrites
from cloacina.store.backfills import BackfillWrites
from cloacina.store.base import WriteTx
from cloacina.store.dialect import SQLITE, Dialect
from cloacina.store.fanout import MapWrites
from cloacina.store.records import (
    PLAIN_RUN,
    Claim,
    DependentState,
    NewEvent,
    NewLogChunk,
    NewTask,
    ReadyTask,
    RunOrigin,
    RunProgress,
    StaleClaim,
    WorkflowKey,
)
from cloacina.store.run_control import RunControlWrites
from cloacina.store.schedules import ScheduleWrites
from cloacina.store.sql_common import chunks, get_outputs, key_filter, marks
from cloacina.store.subworkflows import SubWrites
from cloacina.store.triggers import TriggerWrites


class SQLWriteTx(
    MapWrites,
    SubWrites,
    AlertWrites,
    AuditWrites,
    TriggerWrites,
    ScheduleWrites,
    BackfillWrites,
    RunControlWrites,
    WriteTx,
):
    """The writes of one transaction, in SQL both SQLite and PostgreSQL run (qmark style;
    a PostgreSQL connection adapter converts the placeholders)."""

    __slots__ = ("_c", "_tokens")

    #: What differs between backends (the clock, row locks): see store/dialect.py.
    dialect: Dialect = SQLITE

    def __init__(self, conn: Any, tokens: Iterator[str]) -> None:
        self._c = conn
        self._tokens = tokens

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
        deadline_at: float | None = None,
        origin: RunOrigin | None = None,
    ) -> None:
        c = self._c
        o = PLAIN_RUN if origin is None else origin
        c.execute(
            "INSERT INTO workflow_executions (id, tenant, package, workflow_name,"
            " workflow_version, status, input_context, tasks_total, tasks_remaining,"
            " tasks_failed, created_at, started_at, updated_at, package_id, graph_stored,"
            " deadline_at, priority, scheduled_for, schedule_id, backfill_id, trigger_name,"
            " trigger_key) VALUES (?,?,?,?,?,'running',?,?,?,0,?,?,?,?,1,?,?,?,?,?,?,?)",
            (
                execution_id,
                tenant,
                package,
                workflow_name,
                workflow_version,
                input_json,
                len(tasks),
                len(tasks),
                now,
                now,
                now,
                package_id,
                deadline_at,
                o.priority,
                o.scheduled_for,
                o.schedule_id,
                o.backfill_id,
                o.trigger_name,
                o.trigger_key,
            ),
        )
        c.executemany(
            "INSERT INTO task_executions (execution_id, task_id, task_index, status,"
            " max_attempts, deps_total, deps_remaining, priority) VALUES (?,?,?,?,?,?,?,?)",
            [
                (
                    execution_id,
                    t.task_id,
                    t.index,
                    "pending" if t.dependencies else "ready",
                    t.max_attempts,
                    len(t.dependencies),
                    len(t.dependencies),
                    o.priority,
                )
                for t in tasks
            ],
        )
        self._add_edges(execution_id, tasks)

    def _add_edges(self, execution_id: str, tasks: Sequence[NewTask]) -> None:
        """The run's graph: a row for each task that has dependencies (in a table of its
        own: a join's long list must not weigh on every update of its task row)."""
        edges = [(execution_id, t.task_id, t.dependencies_json) for t in tasks if t.dependencies]
        if edges:
            self._c.executemany(
                "INSERT INTO task_dependencies (execution_id, task_id, dependencies)"
                " VALUES (?,?,?)",
                edges,
            )

    def claim_ready(
        self, limit: int, workflow_keys: Sequence[WorkflowKey], worker_id: str, now: float
    ) -> list[Claim]:
        if limit <= 0 or not workflow_keys:
            return []
        keys, key_params = key_filter(workflow_keys)
        rows = self._c.execute(
            "SELECT t.id, t.execution_id, t.task_id, w.workflow_name, w.workflow_version,"
            " t.deps_total, t.deps_failed, t.deps_skipped, t.priority, t.map_index, t.map_item,"
            " t.map_parent"
            " FROM task_executions t JOIN workflow_executions w ON w.id = t.execution_id"
            " WHERE t.status = 'ready' AND (t.retry_at IS NULL OR t.retry_at <= ?)"
            f" AND w.status = 'running' AND {keys}"
            # Higher priority first (a backfill's runs wait for fresh ones), then in order;
            # the ready index is (status, priority DESC, id), so this is read, not sorted.
            " ORDER BY t.priority DESC, t.id LIMIT ?",
            (now, *key_params, limit),
        ).fetchall()
        priorities = {r[0]: r[8] for r in rows}
        claims = self._claim_rows(
            [ReadyTask(*r[:8]) for r in rows], "ready", worker_id, now, priorities
        )
        instances = {r[0]: r[9:12] for r in rows if r[9] is not None}
        if instances:  # a mapped task's instances: their index, item and task come along
            claims = [
                replace(c, map_index=m[0], map_item=m[1], map_parent=m[2])
                if (m := instances.get(c.row_id)) is not None
                else c
                for c in claims
            ]
        return claims

    def claim_pending(self, ready: Sequence[ReadyTask], worker_id: str, now: float) -> list[Claim]:
        return self._claim_rows(ready, "pending", worker_id, now)

    def _claim_rows(
        self,
        rows: Sequence[ReadyTask],
        from_status: str,
        worker_id: str,
        now: float,
        priorities: dict[int, int] | None = None,
    ) -> list[Claim]:
        """Mark each row running with a fresh claim token, if it is still ``from_status``."""
        sql = (
            "UPDATE task_executions SET status='running', attempt=attempt+1,"
            " claim_token=?, worker_id=?, started_at=?, retry_at=NULL, finished_at=NULL,"
            # The database's clock, as for the workers' heartbeats (see find_stale).
            f" heartbeat_at={self.dialect.now}"
            f" WHERE id=? AND status='{from_status}' RETURNING attempt, recovery_count"
        )
        claims: list[Claim] = []
        for r in rows:
            token = next(self._tokens)
            got = self._c.execute(sql, (token, worker_id, now, r.row_id)).fetchone()
            if got is not None:
                claims.append(
                    Claim(
                        r.row_id,
                        r.execution_id,
                        r.task_id,
                        got[0],
                        got[1],
                        token,
                        r.workflow_name,
                        r.workflow_version,
                        now,
                        r.deps_total,
                        r.deps_failed,
                        r.deps_skipped,
                        priority=priorities.get(r.row_id, 0) if priorities else 0,
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
        cur = self._c.execute(
            "UPDATE task_executions SET status=?, finished_at=?, error=?, error_traceback=?,"
            " skip_reason=?, claim_token=NULL, heartbeat_at=NULL"
            " WHERE id=? AND claim_token=? AND status='running'",
            # The plain string: drivers bind an exact str faster than an enum member.
            (status.value, now, error, traceback, skip_reason, claim.row_id, claim.claim_token),
        )
        return bool(cur.rowcount == 1)

    def schedule_retry(
        self, claim: Claim, retry_at: float, error: str, traceback: str | None, now: float
    ) -> bool:
        # finished_at: the failed attempt's record takes it (else the database's clock, which
        # can read a little behind the engine's that stamped the start); the next claim
        # clears it.
        cur = self._c.execute(
            "UPDATE task_executions SET status='ready', retry_at=?, error=?, error_traceback=?,"
            " claim_token=NULL, worker_id=NULL, heartbeat_at=NULL, finished_at=?"
            " WHERE id=? AND claim_token=? AND status='running'",
            (retry_at, error, traceback, now, claim.row_id, claim.claim_token),
        )
        return bool(cur.rowcount == 1)

    def save_output(self, row_id: int, execution_id: str, task_id: str, context_json: str) -> None:
        self._c.execute(
            "INSERT INTO task_outputs (task_execution_id, execution_id, task_id, context)"
            " VALUES (?,?,?,?) ON CONFLICT (task_execution_id) DO UPDATE SET"
            " context=excluded.context",
            (row_id, execution_id, task_id, context_json),
        )

    def bump_dependents(
        self, execution_id: str, task_ids: Sequence[str], failed: int, skipped: int
    ) -> list[DependentState]:
        out: list[DependentState] = []
        for part in chunks(task_ids):
            rows = self._c.execute(
                "UPDATE task_executions SET deps_remaining=deps_remaining-1,"
                " deps_failed=deps_failed+?, deps_skipped=deps_skipped+?"
                f" WHERE execution_id=? AND task_id IN ({marks(len(part))})"
                " AND status='pending'"
                " RETURNING id, task_id, deps_total, deps_remaining, deps_failed, deps_skipped",
                (failed, skipped, execution_id, *part),
            ).fetchall()
            out.extend(DependentState(*r) for r in rows)
        return out

    def mark_ready(self, row_ids: Sequence[int]) -> None:
        for part in chunks(row_ids):
            self._c.execute(
                f"UPDATE task_executions SET status='ready' WHERE id IN ({marks(len(part))})"
                " AND status='pending'",
                tuple(part),
            )

    def mark_skipped(self, row_id: int, reason: str, now: float) -> bool:
        cur = self._c.execute(
            "UPDATE task_executions SET status='skipped', skip_reason=?, finished_at=?"
            " WHERE id=? AND status IN ('pending', 'ready')",
            (reason, now, row_id),
        )
        return bool(cur.rowcount == 1)

    def run_progress(self, execution_id: str, settled: int, failed: int, now: float) -> RunProgress:
        row = self._c.execute(
            "UPDATE workflow_executions SET tasks_remaining=tasks_remaining-?,"
            " tasks_failed=tasks_failed+?, updated_at=? WHERE id=?"
            " RETURNING status, tasks_remaining, tasks_failed",
            (settled, failed, now, execution_id),
        ).fetchone()
        if row is None:
            raise StoreError(f"workflow execution {execution_id!r} vanished from the database")
        return RunProgress(ExecutionStatus(row[0]), row[1], row[2])

    def finish_run(
        self,
        execution_id: str,
        status: ExecutionStatus,
        now: float,
        *,
        final_json: str | None,
        error: str | None,
    ) -> bool:
        cur = self._c.execute(
            "UPDATE workflow_executions SET status=?, final_context=?, error=?, finished_at=?,"
            " updated_at=? WHERE id=? AND status IN ('running', 'paused')",
            (status, final_json, error, now, now, execution_id),
        )
        return bool(cur.rowcount == 1)

    def add_events(self, events: Sequence[NewEvent]) -> None:
        if events:
            self._c.executemany(
                "INSERT INTO execution_events (execution_id, task_id, event, attempt, detail,"
                " created_at) VALUES (?,?,?,?,?,?)",
                events,  # named tuples in the columns' order
            )

    def add_task_logs(self, chunks: Sequence[NewLogChunk]) -> None:
        if chunks:
            # Only for runs that still exist: a chunk of a run removed meanwhile must not
            # fail the transaction it rides in (an outcome's).
            self._c.executemany(
                "INSERT INTO task_logs (execution_id, task_id, attempt, stream, created_at,"
                " text) SELECT ?,?,?,?,?,? WHERE EXISTS"
                " (SELECT 1 FROM workflow_executions WHERE id = ?)",
                [(*c, c.execution_id) for c in chunks],
            )

    def hand_back(self, claims: Sequence[Claim]) -> list[Claim]:
        back: list[Claim] = []
        for claim in claims:
            cur = self._c.execute(
                "UPDATE task_executions SET status='ready', claim_token=NULL, worker_id=NULL,"
                " heartbeat_at=NULL, attempt=attempt-1"
                " WHERE id=? AND claim_token=? AND status='running'",
                (claim.row_id, claim.claim_token),
            )
            if cur.rowcount == 1:
                back.append(claim)
        return back

    def _still_stale(self) -> str:
        """The staleness predicate of ``find_stale``, re-checked inside the write that acts
        on it: the read may be up to a busy timeout old, and a worker whose heartbeat came
        back in between keeps its task (else its body would run twice)."""
        return (
            "COALESCE((SELECT k.last_heartbeat FROM workers k"
            " WHERE k.id = task_executions.worker_id), task_executions.heartbeat_at)"
            f" < {self.dialect.now} - ?"
        )

    def requeue_stale(self, stale: StaleClaim, max_age: float) -> bool:
        cur = self._c.execute(
            "UPDATE task_executions SET status='ready', claim_token=NULL, worker_id=NULL,"
            " heartbeat_at=NULL, recovery_count=recovery_count+1, attempt=attempt-1"
            f" WHERE id=? AND status='running' AND claim_token=? AND {self._still_stale()}",
            (stale.row_id, stale.claim_token, max_age),
        )
        return bool(cur.rowcount == 1)

    def fail_stale(self, stale: StaleClaim, error: str, now: float, max_age: float) -> bool:
        cur = self._c.execute(
            "UPDATE task_executions SET status='failed', error=?, finished_at=?,"
            " claim_token=NULL, heartbeat_at=NULL"
            f" WHERE id=? AND status='running' AND claim_token=? AND {self._still_stale()}",
            (error, now, stale.row_id, stale.claim_token, max_age),
        )
        return bool(cur.rowcount == 1)

    # ---- changing a run's graph: reruns and tasks added mid-run ----------------------------
    def reset_tasks(
        self, execution_id: str, task_ids: Sequence[str], now: float
    ) -> list[DependentState]:
        wanted = set(task_ids)
        rows = self._graph_rows(execution_id)
        unknown = wanted - {r[1] for r in rows}
        if unknown:
            raise StoreError(
                f"workflow execution {execution_id!r} has no task(s) {sorted(unknown)}"
            )
        ids = [r[0] for r in rows if r[1] in wanted]
        for part in chunks(ids):
            # A completed attempt lives in its task's row (not in task_attempts: that would
            # cost every completion an insert): keep it before the row is reset.
            self._c.execute(
                "INSERT INTO task_attempts (execution_id, task_id, attempt, recovery, outcome,"
                " worker_id, started_at, finished_at, error, error_traceback, skip_reason)"
                " SELECT execution_id, task_id, attempt, recovery_count, status, worker_id,"
                " started_at, finished_at, error, error_traceback, skip_reason"
                f" FROM task_executions WHERE id IN ({marks(len(part))})"
                " AND status = 'completed'",
                tuple(part),
            )
            self._c.execute(
                f"DELETE FROM task_outputs WHERE task_execution_id IN ({marks(len(part))})",
                tuple(part),
            )
            # A mapped task's instances go with it (their outputs by cascade): it maps its
            # list afresh when it runs again.
            self._c.execute(
                f"DELETE FROM task_executions WHERE map_parent IN ({marks(len(part))})",
                tuple(part),
            )
            self._c.execute(
                "UPDATE task_executions SET status='pending', claim_token=NULL,"
                " worker_id=NULL, heartbeat_at=NULL, retry_at=NULL, error=NULL,"
                " error_traceback=NULL, skip_reason=NULL, started_at=NULL, finished_at=NULL,"
                " map_total=NULL, map_remaining=NULL, map_failed=NULL, map_next=NULL"
                f" WHERE id IN ({marks(len(part))})",
                tuple(part),
            )
        states = self._recount(execution_id, now)
        return [st for st in states if st.task_id in wanted]

    def add_tasks(
        self, execution_id: str, tasks: Sequence[NewTask], now: float
    ) -> list[DependentState]:
        if not tasks:
            return []
        for t in tasks:  # rare and small: one statement each, on every backend
            self._c.execute(
                "INSERT INTO task_executions (execution_id, task_id, task_index, status,"
                " max_attempts, deps_total, deps_remaining, priority)"
                " SELECT ?,?,?,'pending',?,?,?, priority FROM workflow_executions WHERE id=?",
                (
                    execution_id,
                    t.task_id,
                    t.index,
                    t.max_attempts,
                    len(t.dependencies),
                    len(t.dependencies),
                    execution_id,
                ),
            )
            if t.dependencies:
                self._c.execute(
                    "INSERT INTO task_dependencies (execution_id, task_id, dependencies)"
                    " VALUES (?,?,?)",
                    (execution_id, t.task_id, t.dependencies_json),
                )
        self._c.execute(
            "UPDATE workflow_executions SET tasks_total=tasks_total+? WHERE id=?",
            (len(tasks), execution_id),
        )
        added = {t.task_id for t in tasks}
        return [st for st in self._recount(execution_id, now) if st.task_id in added]

    def _graph_rows(self, execution_id: str) -> list[tuple[int, str, str, list[str]]]:
        stored = self._c.execute(
            "SELECT graph_stored FROM workflow_executions WHERE id=?", (execution_id,)
        ).fetchone()
        if stored is None:
            raise StoreError(f"no workflow execution {execution_id!r}")
        if not stored[0]:
            raise StoreError(
                f"workflow execution {execution_id!r} was created before runs stored their "
                "graph; its tasks cannot be reset or added to"
            )
        rows = self._c.execute(
            "SELECT t.id, t.task_id, t.status, d.dependencies FROM task_executions t"
            " LEFT JOIN task_dependencies d"
            " ON d.execution_id = t.execution_id AND d.task_id = t.task_id"
            " WHERE t.execution_id=? AND t.map_parent IS NULL ORDER BY t.task_index, t.id",
            (execution_id,),
        ).fetchall()
        return [
            (row_id, task_id, status, json.loads(deps) if deps else [])
            for row_id, task_id, status, deps in rows
        ]

    def _recount(self, execution_id: str, now: float) -> list[DependentState]:
        """Recompute every pending task's dependency counters and the run's counters from
        the rows (never patched); the run is running again. The pending tasks' counters."""
        rows = self._graph_rows(execution_id)
        status_of = {task_id: status for _id, task_id, status, _deps in rows}
        states: list[DependentState] = []
        for row_id, task_id, status, deps in rows:
            if status != "pending":
                continue
            settled = [status_of.get(d) for d in deps]
            state = DependentState(
                row_id,
                task_id,
                len(deps),
                sum(1 for st in settled if st not in TERMINAL_TASK),
                settled.count("failed"),
                settled.count("skipped"),
            )
            self._c.execute(
                "UPDATE task_executions SET deps_total=?, deps_remaining=?, deps_failed=?,"
                " deps_skipped=? WHERE id=?",
                (
                    state.deps_total,
                    state.deps_remaining,
                    state.deps_failed,
                    state.deps_skipped,
                    row_id,
                ),
            )
            states.append(state)
        statuses = list(status_of.values())
        self._c.execute(
            "UPDATE workflow_executions SET status='running', tasks_total=?,"
            " tasks_remaining=?, tasks_failed=?, final_context=NULL, error=NULL,"
            " finished_at=NULL, updated_at=? WHERE id=?",
            (
                len(statuses),
                sum(1 for st in statuses if st not in TERMINAL_TASK),
                statuses.count("failed"),
                now,
                execution_id,
            ),
        )
        return states

    def get_outputs(self, execution_id: str, task_ids: Sequence[str]) -> dict[str, str]:
        return get_outputs(self._c, execution_id, task_ids)

    def failed_task_errors(self, execution_id: str) -> list[tuple[str, str | None]]:
        rows = self._c.execute(
            "SELECT task_id, error FROM task_executions WHERE execution_id=? AND status='failed'"
            " AND map_parent IS NULL ORDER BY task_index",
            (execution_id,),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def get_input(self, execution_id: str) -> str:
        row = self._c.execute(
            "SELECT input_context FROM workflow_executions WHERE id=?", (execution_id,)
        ).fetchone()
        return (row[0] if row else None) or "{}"

    def lock_run_status(self, execution_id: str) -> ExecutionStatus | None:
        row = self._c.execute(
            f"SELECT status FROM workflow_executions WHERE id=?{self.dialect.lock_rows}",
            (execution_id,),
        ).fetchone()
        return None if row is None else ExecutionStatus(row[0])

    def set_run_status(
        self,
        execution_id: str,
        status: ExecutionStatus,
        from_statuses: Sequence[ExecutionStatus],
        now: float,
    ) -> bool:
        cur = self._c.execute(
            "UPDATE workflow_executions SET status=?, updated_at=?"
            f" WHERE id=? AND status IN ({marks(len(from_statuses))})",
            (status, now, execution_id, *from_statuses),
        )
        return bool(cur.rowcount == 1)

    def cancel_tasks(self, execution_id: str, reason: str, now: float) -> list[str]:
        running = [
            r[0]
            for r in self._c.execute(
                "SELECT task_id FROM task_executions WHERE execution_id=? AND status='running'",
                (execution_id,),
            )
        ]
        cur = self._c.execute(
            "UPDATE task_executions SET status='skipped', skip_reason=?, finished_at=?,"
            " claim_token=NULL, heartbeat_at=NULL"
            " WHERE execution_id=? AND status IN ('pending', 'ready', 'running')"
            " AND map_parent IS NULL",
            (reason, now, execution_id),
        )
        skipped = cur.rowcount
        # A mapped task's instances go with it; they are not counted among the run's tasks.
        self._c.execute(
            "UPDATE task_executions SET status='skipped', skip_reason=?, finished_at=?,"
            " claim_token=NULL, heartbeat_at=NULL WHERE map_parent IN (SELECT id FROM"
            " task_executions WHERE execution_id=? AND map_total IS NOT NULL)"
            " AND status IN ('pending', 'ready', 'running')",
            (reason, now, execution_id),
        )
        self._c.execute(
            "UPDATE workflow_executions SET tasks_remaining=tasks_remaining-?, updated_at=?"
            " WHERE id=?",
            (skipped, now, execution_id),
        )
        return running
