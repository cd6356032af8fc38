"""A PostgreSQL write transaction: the shared SQL, batched where PostgreSQL can do more.

Round trips are what a worker waits on, and statements are what the server spends its CPU
on, so the hot path keeps both few:

- ``BEGIN``, run locks, event rows and ``NOTIFY`` are *deferred*: nobody reads their
  results, so they go to the server in one pipeline with the next statement that has
  results, or with the ``COMMIT``.
- A batch of completions (status, outputs, the dependents' counters, the runs' counters)
  is one statement; so are a batch of claims and a new execution with all its tasks.
- Every transaction that changes a run's tasks locks the run rows first, in id order, so
  workers settling tasks of the same runs never deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cloacina.model.status import ExecutionStatus
from cloacina.store.dialect import POSTGRESQL
from cloacina.store.records import (
    PLAIN_RUN,
    Claim,
    Completion,
    CompletionResult,
    DependentState,
    NewEvent,
    NewLogChunk,
    NewTask,
    ReadyTask,
    RunOrigin,
    RunProgress,
    StaleClaim,
    WorkflowKey,
    map_instance_id,
)
from cloacina.store.sql import SQLWriteTx

#: qmark SQL as psycopg takes it (see store/dialect.py).
pg_sql = POSTGRESQL.sql


class TxConnection:
    """The connection of one write transaction, with deferred statements.

    ``BEGIN`` is deferred too, so a connection that died in the pool (server restart,
    ``pg_terminate_backend``) is found out by the first real statement, while nothing of
    the transaction has reached the server: ``reconnect`` then hands over a fresh connection
    and the same statements go again.
    """

    __slots__ = ("_fresh", "_pending", "_reconnect", "raw")

    def __init__(self, raw: Any, reconnect: Callable[[Any], Any]) -> None:
        self.raw = raw  # SQLAlchemy's pooled connection; .driver_connection is psycopg's
        self._pending: list[tuple[str, Sequence[Any] | None]] = [("BEGIN", None)]
        self._fresh = True
        self._reconnect = reconnect

    def defer(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Send this statement with the next one (its result is not needed)."""
        self._pending.append((pg_sql(sql), params))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._send([(pg_sql(sql), params)])[0]

    def execute_all(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Send several statements in one round trip; their cursors, in order."""
        return self._send([(pg_sql(sql), params) for sql, params in statements])

    def commit(self) -> None:
        if self._fresh and len(self._pending) == 1:
            self._pending.clear()  # nothing was written: no transaction to commit
            return
        self._send([("COMMIT", None)])

    def _send(self, statements: list[tuple[str, Sequence[Any] | None]]) -> list[Any]:
        conn = self.raw.driver_connection
        if not self._pending and len(statements) == 1:
            ((sql, params),) = statements
            cur = conn.cursor()
            cur.execute(sql, params, prepare=params is not None)
            return [cur]
        pending, self._pending = self._pending, []
        import psycopg

        try:
            cursors = self._pipeline(conn, pending, statements)
        except psycopg.OperationalError:
            if not self._fresh:
                raise
            # Nothing of this transaction reached the server: start it on a fresh connection.
            self.raw = self._reconnect(self.raw)
            cursors = self._pipeline(self.raw.driver_connection, pending, statements)
        self._fresh = False
        return cursors

    @staticmethod
    def _pipeline(
        conn: Any,
        pending: list[tuple[str, Sequence[Any] | None]],
        statements: list[tuple[str, Sequence[Any] | None]],
    ) -> list[Any]:
        cursors = [conn.cursor() for _ in statements]
        with conn.pipeline():
            # Transaction control (no parameters) is never prepared.
            for sql, params in pending:
                conn.cursor().execute(sql, params, prepare=params is not None)
            for cur, (sql, params) in zip(cursors, statements, strict=True):
                cur.execute(sql, params, prepare=params is not None)
        return cursors


_LOCK_RUNS = (
    "SELECT id FROM workflow_executions WHERE id = ANY(%b::text[]) ORDER BY id FOR NO KEY UPDATE"
)

# One statement for a batch of completions. The sub-statements touch disjoint rows (the
# completed tasks, their pending dependents, their runs); the runs were locked beforehand.
_COMPLETE_TASKS = (
    "WITH input AS ("
    " SELECT * FROM unnest(%b::int[], %b::text[], %b::text[], %b::float8[])"
    " AS i(id, token, ctx, fin)"
    "), done AS ("
    " UPDATE task_executions t SET status='completed', finished_at=i.fin, error=NULL,"
    " error_traceback=NULL, skip_reason=NULL, claim_token=NULL, heartbeat_at=NULL"
    " FROM input i WHERE t.id = i.id AND t.claim_token = i.token AND t.status = 'running'"
    " RETURNING t.id, t.execution_id, t.task_id, i.ctx"
    "), outs AS ("
    " INSERT INTO task_outputs (task_execution_id, execution_id, task_id, context)"
    " SELECT id, execution_id, task_id, ctx FROM done"
    " ON CONFLICT (task_execution_id) DO UPDATE SET context = excluded.context"
    "), bumps AS ("
    " SELECT d.execution_id, e.dep, count(*)::int AS n"
    " FROM done d JOIN unnest(%b::int[], %b::text[]) AS e(src, dep) ON e.src = d.id"
    " GROUP BY d.execution_id, e.dep"
    "), deps AS ("
    " UPDATE task_executions t SET deps_remaining = t.deps_remaining - b.n FROM bumps b"
    " WHERE t.execution_id = b.execution_id AND t.task_id = b.dep AND t.status = 'pending'"
    " RETURNING t.execution_id, t.id, t.task_id, t.deps_total, t.deps_remaining,"
    " t.deps_failed, t.deps_skipped"
    "), runs AS ("
    " UPDATE workflow_executions w SET tasks_remaining = w.tasks_remaining - r.n, updated_at = ?"
    " FROM (SELECT execution_id, count(*)::int AS n FROM done GROUP BY execution_id) r"
    " WHERE w.id = r.execution_id"
    " RETURNING w.id, w.status, w.tasks_remaining, w.tasks_failed"
    ")"
    " SELECT 0, id, execution_id, task_id, 0, 0, 0, 0 FROM done"
    " UNION ALL SELECT 1, id, execution_id, task_id, deps_total, deps_remaining, deps_failed,"
    " deps_skipped FROM deps"
    " UNION ALL SELECT 2, 0, id, status, tasks_remaining, tasks_failed, 0, 0 FROM runs"
)

_CREATE_EXECUTION = (
    "WITH run AS ("
    " INSERT INTO workflow_executions (id, tenant, package, workflow_name, workflow_version,"
    " status, input_context, tasks_total, tasks_remaining, tasks_failed, created_at,"
    " started_at, updated_at, package_id, graph_stored, deadline_at, priority, scheduled_for,"
    " schedule_id, backfill_id, trigger_name, trigger_key)"
    " VALUES (?,?,?,?,?,'running',?,?,?,0,?,?,?,?,1,?,?,?,?,?,?,?)"
    "), tasks AS ("
    " INSERT INTO task_executions (execution_id, task_id, task_index, status, max_attempts,"
    " deps_total, deps_remaining, priority)"
    " SELECT ?, t.*, ? FROM unnest(%b::text[], %b::int[], %b::text[], %b::int[], %b::int[],"
    " %b::int[]) AS t(task_id, task_index, status, max_attempts, deps_total, deps_remaining)"
    "), edges AS ("
    " INSERT INTO task_dependencies (execution_id, task_id, dependencies)"
    " SELECT ?, e.* FROM unnest(%b::text[], %b::text[]) AS e(task_id, dependencies)"
    ") SELECT pg_notify(?, '')"
)

_CLAIM_PENDING = (
    "UPDATE task_executions SET status='running', attempt=attempt+1,"
    " claim_token=? || '-' || id::text, worker_id=?,"
    f" heartbeat_at={POSTGRESQL.now}, started_at=?, retry_at=NULL, finished_at=NULL"
    " WHERE id = ANY(%b::int[]) AND status='pending'"
    " RETURNING id, attempt, recovery_count, claim_token"
)

_ADD_EVENTS = (
    "INSERT INTO execution_events (execution_id, task_id, event, attempt, detail, created_at)"
    " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::int[], %b::text[], %b::float8[])"
)

#: Chunks of output, for runs that still exist (a chunk of a run removed meanwhile must not
#: fail the transaction it rides in).
_ADD_TASK_LOGS = (
    "INSERT INTO task_logs (execution_id, task_id, attempt, stream, created_at, text)"
    " SELECT e, t, a, s, c, x FROM unnest(%b::text[], %b::text[], %b::int[], %b::text[],"
    " %b::float8[], %b::text[]) WITH ORDINALITY AS u(e, t, a, s, c, x, n) WHERE EXISTS"
    " (SELECT 1 FROM workflow_executions w WHERE w.id = u.e) ORDER BY n"  # ids in order
)

_FINISH_RUN = (
    "WITH run AS ("
    " UPDATE workflow_executions SET status=?, final_context=?, error=?, finished_at=?,"
    " updated_at=? WHERE id=? AND status IN ('running', 'paused') RETURNING id"
    ") SELECT pg_notify(?, id) FROM run"
)


_INSERT_INSTANCES = (
    "INSERT INTO task_executions (execution_id, task_id, task_index, status, max_attempts,"
    " deps_total, deps_remaining, priority, map_parent, map_index, map_item)"
    " SELECT ?, u.task_id, ?, u.status, ?, 0, 0, ?, ?, u.idx, u.item"
    " FROM unnest(%b::text[], %b::text[], %b::int[], %b::text[]) AS u(task_id, status, idx, item)"
)

# Instances that succeeded, fenced by their claims, and their outputs: one statement.
_COMPLETE_INSTANCES = (
    "WITH u AS (SELECT * FROM unnest(%b::int[], %b::text[], %b::float8[], %b::text[])"
    " AS u(id, token, finished, output)),"
    " done AS (UPDATE task_executions t SET status='completed', finished_at=u.finished,"
    " claim_token=NULL, heartbeat_at=NULL FROM u"
    " WHERE t.id = u.id AND t.claim_token = u.token AND t.status='running'"
    " RETURNING t.id, t.execution_id, t.task_id, u.output),"
    " saved AS (INSERT INTO task_outputs (task_execution_id, execution_id, task_id, context)"
    " SELECT id, execution_id, task_id, output FROM done"
    " ON CONFLICT (task_execution_id) DO UPDATE SET context=excluded.context)"
    " SELECT id FROM done"
)


class PostgresWriteTx(SQLWriteTx):
    """The shared SQL, plus batched statements, claims with SKIP LOCKED, and NOTIFY to wake
    other workers (delivered at commit)."""

    __slots__ = ("_channel", "_done_channel", "_notified")

    _c: TxConnection
    dialect = POSTGRESQL

    def __init__(
        self, conn: TxConnection, tokens: Iterator[str], channel: str, done_channel: str
    ) -> None:
        super().__init__(conn, tokens)
        self._channel = channel
        self._done_channel = done_channel
        self._notified = False

    def _wake_others(self) -> None:
        # Repeated notifications in one transaction are folded into one anyway.
        if not self._notified:
            self._notified = True
            self._c.defer("SELECT pg_notify(?, '')", (self._channel,))

    def lock_runs(self, execution_ids: Sequence[str]) -> None:
        if execution_ids:
            self._c.defer(_LOCK_RUNS, (list(execution_ids),))

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
        self._notified = True
        o = PLAIN_RUN if origin is None else origin
        self._c.execute(
            _CREATE_EXECUTION,
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
                execution_id,
                o.priority,
                [t.task_id for t in tasks],
                [t.index for t in tasks],
                ["pending" if t.dependencies else "ready" for t in tasks],
                [t.max_attempts for t in tasks],
                [len(t.dependencies) for t in tasks],
                [len(t.dependencies) for t in tasks],
                execution_id,
                [t.task_id for t in tasks if t.dependencies],
                [t.dependencies_json for t in tasks if t.dependencies],
                self._channel,
            ),
        )

    def complete_tasks(self, items: Sequence[Completion], now: float) -> CompletionResult:
        result = CompletionResult([], {}, {})
        if not items:
            return result
        by_row = {item.claim.row_id: item for item in items}
        sources: list[int] = []
        targets: list[str] = []
        for item in items:
            for dep in item.dependents:
                sources.append(item.claim.row_id)
                targets.append(dep)
        rows = self._c.execute(
            _COMPLETE_TASKS,
            (
                list(by_row),
                [item.claim.claim_token for item in items],
                [item.output_json for item in items],
                [item.finished_at for item in items],
                sources,
                targets,
                now,
            ),
        ).fetchall()
        done: set[int] = set()
        for kind, row_id, eid, text, a, b, c, d in rows:
            if kind == 0:
                done.add(row_id)
            elif kind == 1:
                state = DependentState(row_id, text, a, b, c, d)
                result.dependents.setdefault(eid, {})[row_id] = state
            else:
                result.progress[eid] = RunProgress(ExecutionStatus(text), a, b)
        result.completed = [item for item in items if item.claim.row_id in done]
        return result

    def claim_pending(self, ready: Sequence[ReadyTask], worker_id: str, now: float) -> list[Claim]:
        if not ready:
            return []
        return self.claim_next(ready, 0, (), worker_id, now)[0]

    def claim_next(
        self,
        pending: Sequence[ReadyTask],
        ready_limit: int,
        workflow_keys: Sequence[WorkflowKey],
        worker_id: str,
        now: float,
    ) -> tuple[list[Claim], list[Claim]]:
        statements: list[tuple[str, Sequence[Any]]] = []
        if pending:
            prefix = next(self._tokens)
            statements.append(
                (_CLAIM_PENDING, (prefix, worker_id, now, [r.row_id for r in pending]))
            )
        search = ready_limit > 0 and bool(workflow_keys)
        if search:
            statements.append(self._claim_ready_sql(ready_limit, workflow_keys, worker_id, now))
        if not statements:
            return [], []
        cursors = self._c.execute_all(statements)
        direct = self._pending_claims(pending, cursors[0].fetchall(), now) if pending else []
        found: list[Claim] = []
        if search:
            rows = cursors[-1].fetchall()
            found = sorted((Claim(*r) for r in rows), key=lambda c: c.row_id)
        return direct, found

    @staticmethod
    def _pending_claims(
        pending: Sequence[ReadyTask], rows: Sequence[Sequence[Any]], now: float
    ) -> list[Claim]:
        got = {r[0]: r for r in rows}
        claims: list[Claim] = []
        for r in pending:
            row = got.get(r.row_id)
            if row is not None:
                claims.append(
                    Claim(
                        r.row_id,
                        r.execution_id,
                        r.task_id,
                        row[1],
                        row[2],
                        row[3],
                        r.workflow_name,
                        r.workflow_version,
                        now,
                        r.deps_total,
                        r.deps_failed,
                        r.deps_skipped,
                    )
                )
        return claims

    def finish_run(
        self,
        execution_id: str,
        status: ExecutionStatus,
        now: float,
        *,
        final_json: str | None,
        error: str | None,
    ) -> bool:
        # Whoever waits for this run, in any process, hears of it at commit.
        rows = self._c.execute(
            _FINISH_RUN,
            (status, final_json, error, now, now, execution_id, self._done_channel),
        ).fetchall()
        return len(rows) == 1

    def add_events(self, events: Sequence[NewEvent]) -> None:
        if events:
            self._c.defer(
                _ADD_EVENTS,
                [
                    [e.execution_id for e in events],
                    [e.task_id for e in events],
                    [e.event for e in events],
                    [e.attempt for e in events],
                    [e.detail for e in events],
                    [e.created_at for e in events],
                ],
            )

    def add_task_logs(self, chunks: Sequence[NewLogChunk]) -> None:
        if chunks:
            self._c.defer(_ADD_TASK_LOGS, [list(column) for column in zip(*chunks, strict=True)])

    def mark_ready(self, row_ids: Sequence[int]) -> None:
        if row_ids:
            self._c.defer(
                "UPDATE task_executions SET status='ready' WHERE id = ANY(%b::int[])"
                " AND status='pending'",
                (list(row_ids),),
            )
            self._wake_others()

    def hand_back(self, claims: Sequence[Claim]) -> list[Claim]:
        back = super().hand_back(claims)
        if back:
            self._wake_others()
        return back

    def requeue_stale(self, stale: StaleClaim, max_age: float) -> bool:
        done = super().requeue_stale(stale, max_age)
        if done:
            self._wake_others()
        return done

    def set_run_status(
        self,
        execution_id: str,
        status: ExecutionStatus,
        from_statuses: Sequence[ExecutionStatus],
        now: float,
    ) -> bool:
        done = super().set_run_status(execution_id, status, from_statuses, now)
        if done and status == "running":
            self._wake_others()
        return done

    # ---- mapped tasks: arrays in one statement instead of a row at a time ------------------
    def _made_ready(self) -> None:
        self._wake_others()

    def _insert_instances(
        self,
        execution_id: str,
        parent_row_id: int,
        task_id: str,
        task_index: int,
        priority: int,
        items: Sequence[str],
        first: int,
        opened: int,
        max_attempts: int,
    ) -> None:
        indexes = list(range(first, first + len(items)))
        self._c.execute(
            _INSERT_INSTANCES,
            (
                execution_id,
                task_index,
                max_attempts,
                priority,
                parent_row_id,
                [map_instance_id(task_id, i) for i in indexes],
                ["ready" if i < opened else "pending" for i in indexes],
                indexes,
                list(items),
            ),
        )

    def complete_instances(self, items: Sequence[Completion]) -> list[Completion]:
        if not items:
            return []
        rows = self._c.execute(
            _COMPLETE_INSTANCES,
            (
                [i.claim.row_id for i in items],
                [i.claim.claim_token for i in items],
                [i.finished_at for i in items],
                [i.output_json for i in items],
            ),
        ).fetchall()
        done = {r[0] for r in rows}
        return [i for i in items if i.claim.row_id in done]

    def claim_ready(
        self, limit: int, workflow_keys: Sequence[WorkflowKey], worker_id: str, now: float
    ) -> list[Claim]:
        if limit <= 0 or not workflow_keys:
            return []
        return self.claim_next((), limit, workflow_keys, worker_id, now)[1]

    def _claim_ready_sql(
        self, limit: int, workflow_keys: Sequence[WorkflowKey], worker_id: str, now: float
    ) -> tuple[str, Sequence[Any]]:
        prefix = next(self._tokens)
        sql = (
            "UPDATE task_executions AS t SET status='running', attempt=t.attempt+1,"
            " claim_token=? || '-' || t.id::text, worker_id=?,"
            f" heartbeat_at={POSTGRESQL.now}, started_at=?, retry_at=NULL, finished_at=NULL"
            " FROM workflow_executions w"
            " WHERE w.id = t.execution_id AND t.id IN ("
            "  SELECT t2.id FROM task_executions t2"
            "  JOIN workflow_executions w2 ON w2.id = t2.execution_id"
            "  WHERE t2.status='ready' AND (t2.retry_at IS NULL OR t2.retry_at <= ?)"
            "  AND w2.status='running' AND (w2.workflow_name, w2.workflow_version)"
            "  IN (SELECT * FROM unnest(%b::text[], %b::text[]))"
            # Higher priority first, then in order: the ready index's own order.
            "  ORDER BY t2.priority DESC, t2.id LIMIT ? FOR UPDATE OF t2 SKIP LOCKED)"
            " RETURNING t.id, t.execution_id, t.task_id, t.attempt, t.recovery_count,"
            " t.claim_token, w.workflow_name, w.workflow_version, t.started_at, t.deps_total,"
            " t.deps_failed, t.deps_skipped,"
            # A root's input comes along: no query for it before the task starts.
            " CASE WHEN t.deps_total = 0 AND t.map_parent IS NULL THEN w.input_context END,"
            " t.priority, t.map_index, t.map_item, t.map_parent"
        )
        names = [name for name, _version in workflow_keys]
        versions = [version for _name, version in workflow_keys]
        return sql, (prefix, worker_id, now, now, names, versions, limit)
