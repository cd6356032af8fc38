"""Reads shared by the SQL stores, each in its own short transaction: what the engine's
timers need and what the faces show."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from cloacina.model.status import ExecutionStatus
from cloacina.store.base import Store
from cloacina.store.dialect import dialect_named
from cloacina.store.fanout import MapReads
from cloacina.store.keys import ApiKeyRow
from cloacina.store.records import (
    AttemptRow,
    EventRow,
    ExecutionRow,
    StaleClaim,
    TaskRow,
    WorkflowKey,
)
from cloacina.store.sql_common import (
    ATTEMPT_COLS,
    EXEC_COLS,
    TASK_COLS,
    chunks,
    execution_row,
    key_filter,
    marks,
    task_row,
)
from cloacina.store.subworkflows import SubReads

#: The columns of ``api_keys``, in :class:`ApiKeyRow`'s order.
API_KEY_COLS = ", ".join(ApiKeyRow.__dataclass_fields__)


def like_escape(text: str) -> str:
    """``text`` matched literally by LIKE ... ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_executions_query(
    *,
    limit: int,
    status: str | None = None,
    workflow_name: str | None = None,
    since: float | None = None,
    until: float | None = None,
    q: str | None = None,
    before: tuple[float, str] | None = None,
) -> tuple[str, list[str | float]]:
    """The SQL (``?`` placeholders) and parameters of :meth:`SQLStore.list_executions`.

    Keyset paging on ``(created_at, id)``: a page starts where the last one ended, read
    backwards along ``ix_workflow_executions_page`` (or its status twin), never sorted, so
    the first page of 100,000 runs costs what the first page of 100 does.
    """
    where, params = execution_filters(
        status=status, workflow_name=workflow_name, since=since, until=until, q=q
    )
    if before is not None:
        # A row value: both backends seek the index to it (an OR would scan from the top).
        where.append("(created_at, id) < (?, ?)")
        params += [before[0], before[1]]
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = (
        f"SELECT {EXEC_COLS} FROM workflow_executions{clause}"
        " ORDER BY created_at DESC, id DESC LIMIT ?"
    )
    return sql, [*params, limit]


def execution_filters(
    *,
    status: str | None = None,
    workflow_name: str | None = None,
    since: float | None = None,
    until: float | None = None,
    q: str | None = None,
) -> tuple[list[str], list[str | float]]:
    """The WHERE terms (``?`` placeholders) and parameters of the runs' list filters."""
    where: list[str] = []
    params: list[str | float] = []
    if status:
        where.append("status=?")
        params.append(status)
    if workflow_name:
        where.append("workflow_name=?")
        params.append(workflow_name)
    if since is not None:
        where.append("created_at>=?")
        params.append(since)
    if until is not None:
        where.append("created_at<?")
        params.append(until)
    if q:
        pattern = "%" + like_escape(q.lower()) + "%"
        where.append(
            "(lower(id) LIKE ? ESCAPE '\\' OR lower(COALESCE(error, '')) LIKE ? ESCAPE '\\')"
        )
        params += [pattern, pattern]
    return where, params


class SQLStore(MapReads, SubReads, Store):
    """Reads shared by the SQL stores (each runs in its own short transaction)."""

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    @abc.abstractmethod
    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def find_stale(self, max_age: float, limit: int = 100) -> list[StaleClaim]:
        # The age is judged by the database's clock, as the heartbeats are stamped with it.
        now = dialect_named(self.engine.dialect.name).now
        rows = self._fetchall(
            "SELECT t.id, t.execution_id, t.task_id, t.recovery_count, t.attempt,"
            " w.workflow_name, w.workflow_version, t.claim_token"
            " FROM task_executions t JOIN workflow_executions w ON w.id = t.execution_id"
            " LEFT JOIN workers k ON k.id = t.worker_id"
            f" WHERE t.status='running' AND COALESCE(k.last_heartbeat, t.heartbeat_at) < {now} - ?"
            " ORDER BY t.id LIMIT ?",
            (max_age, limit),
        )
        return [StaleClaim(*r) for r in rows]

    def runs_waiting_for_code(
        self, names: Sequence[str], known: Sequence[WorkflowKey], limit: int = 20
    ) -> list[tuple[str, str, str]]:
        if not names:
            return []
        keys, key_params = key_filter(known) if known else ("1 = 0", [])
        rows = self._fetchall(
            "SELECT DISTINCT w.id, w.workflow_name, w.workflow_version"
            " FROM workflow_executions w JOIN task_executions t ON t.execution_id = w.id"
            f" WHERE w.status = 'running' AND t.status = 'ready'"
            f" AND w.workflow_name IN ({marks(len(names))}) AND NOT ({keys})"
            " ORDER BY w.id LIMIT ?",
            (*names, *key_params, limit),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def has_ready(self, now: float, workflow_keys: Sequence[WorkflowKey]) -> bool:
        if not workflow_keys:
            return False
        keys, key_params = key_filter(workflow_keys)
        row = self._fetchone(
            "SELECT 1 FROM task_executions t JOIN workflow_executions w"
            " ON w.id = t.execution_id WHERE t.status='ready'"
            f" AND (t.retry_at IS NULL OR t.retry_at <= ?) AND w.status='running' AND {keys}"
            " LIMIT 1",
            (now, *key_params),
        )
        return row is not None

    def get_execution(self, execution_id: str) -> ExecutionRow | None:
        row = self._fetchone(
            f"SELECT {EXEC_COLS} FROM workflow_executions WHERE id=?", (execution_id,)
        )
        return execution_row(row) if row else None

    def get_tasks(self, execution_id: str, task_id: str | None = None) -> list[TaskRow]:
        # A task with no row in task_dependencies has none, if the run's graph was stored.
        columns = ", ".join(f"t.{c.strip()}" for c in TASK_COLS.split(","))
        rows = self._fetchall(
            f"SELECT {columns}, CASE WHEN d.dependencies IS NOT NULL THEN d.dependencies"
            " WHEN w.graph_stored = 1 THEN '[]' END, t.map_total"
            " FROM task_executions t JOIN workflow_executions w ON w.id = t.execution_id"
            " LEFT JOIN task_dependencies d"
            " ON d.execution_id = t.execution_id AND d.task_id = t.task_id"
            # A mapped task's instances are not the run's tasks (see map_instances); one is
            # read when asked for by its id ("process[7]").
            " WHERE t.execution_id=?"
            + (" AND t.task_id=?" if task_id is not None else " AND t.map_parent IS NULL")
            + " ORDER BY t.task_index",
            (execution_id,) if task_id is None else (execution_id, task_id),
        )
        return [task_row(r) for r in rows]

    def get_attempts(self, execution_id: str, task_id: str | None = None) -> list[AttemptRow]:
        # The attempts that did not complete, and those a rerun reset, are in task_attempts;
        # a task's current completed attempt is its row (see migration 0007).
        one = "" if task_id is None else " AND task_id=?"
        keys = (execution_id,) if task_id is None else (execution_id, task_id)
        rows = self._fetchall(
            f"SELECT {ATTEMPT_COLS} FROM task_attempts WHERE execution_id=?{one}"
            # Not a mapped task's instances' (their ids end in "[index]"): asked for by id.
            + ("" if task_id is not None else " AND substr(task_id, length(task_id)) <> ']'")
            + " UNION ALL"
            " SELECT 0, execution_id, task_id, attempt, recovery_count, status, worker_id,"
            " started_at, finished_at, error, error_traceback, skip_reason"
            f" FROM task_executions WHERE execution_id=?{one} AND status='completed'"
            + ("" if task_id is not None else " AND map_parent IS NULL"),
            keys + keys,
        )
        attempts = [AttemptRow(*r) for r in rows]
        attempts.sort(key=lambda a: (a.finished_at, a.id == 0, a.id))
        return attempts

    def get_outputs(self, execution_id: str, task_ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in chunks(task_ids):
            for task_id, ctx in self._fetchall(
                "SELECT task_id, context FROM task_outputs WHERE execution_id=?"
                f" AND task_id IN ({marks(len(part))})",
                (execution_id, *part),
            ):
                out[task_id] = ctx
        return out

    # The event feed (FeedQueries) on the fast path: the server's event hub reads it every
    # few milliseconds while streams are open.
    def events_after(self, after_id: int, limit: int = 1000) -> list[EventRow]:
        rows = self._fetchall(
            "SELECT id, execution_id, task_id, event, attempt, detail, created_at"
            " FROM execution_events WHERE id>? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [EventRow(*r) for r in rows]

    def last_event_id(self) -> int:
        row = self._fetchone("SELECT MAX(id) FROM execution_events")
        return int(row[0] or 0) if row else 0

    # An API key by its hash (KeyQueries) on the fast path: the server authenticates every
    # request with it (SQLAlchemy Core opened a SQLite connection per call, 0.3 ms of 0.6).
    def find_api_key(
        self, *, key_id: str | None = None, key_hash: str | None = None
    ) -> ApiKeyRow | None:
        if key_id is not None or key_hash is None:
            return super().find_api_key(key_id=key_id, key_hash=key_hash)
        row = self._fetchone(
            f"SELECT {API_KEY_COLS} FROM api_keys WHERE key_hash=? LIMIT 1", (key_hash,)
        )
        return ApiKeyRow(*row) if row else None

    def get_events(self, execution_id: str, after_id: int = 0) -> list[EventRow]:
        rows = self._fetchall(
            "SELECT id, execution_id, task_id, event, attempt, detail, created_at"
            " FROM execution_events WHERE execution_id=? AND id>? ORDER BY id",
            (execution_id, after_id),
        )
        return [EventRow(*r) for r in rows]

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
        sql, params = list_executions_query(
            limit=limit,
            status=status,
            workflow_name=workflow_name,
            since=since,
            until=until,
            q=q,
            before=before,
        )
        return [execution_row(r) for r in self._fetchall(sql, params)]

    def find_executions(self, id_prefix: str, limit: int = 10) -> list[ExecutionRow]:
        escaped = like_escape(id_prefix)
        rows = self._fetchall(
            f"SELECT {EXEC_COLS} FROM workflow_executions WHERE id LIKE ? ESCAPE '\\'"
            " ORDER BY created_at DESC LIMIT ?",
            (escaped + "%", limit),
        )
        return [execution_row(r) for r in rows]

    def execution_status(self, execution_id: str) -> ExecutionStatus | None:
        row = self._fetchone("SELECT status FROM workflow_executions WHERE id=?", (execution_id,))
        return ExecutionStatus(row[0]) if row else None

    def count_unfinished(self) -> int:
        row = self._fetchone(
            "SELECT COUNT(*) FROM workflow_executions WHERE status IN ('running', 'paused')"
        )
        return int(row[0])

    def count_executions_by_status(
        self,
        *,
        workflow_name: str | None = None,
        since: float | None = None,
        until: float | None = None,
        q: str | None = None,
    ) -> dict[str, int]:
        where, params = execution_filters(
            workflow_name=workflow_name, since=since, until=until, q=q
        )
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._fetchall(
            f"SELECT status, COUNT(*) FROM workflow_executions{clause} GROUP BY status", params
        )
        return {str(r[0]): int(r[1]) for r in rows}
