"""Run control's SQL (DESIGN §11): idempotency keys and reruns.

- **Idempotency:** a run's key is written in the transaction that creates it
  (:meth:`RunControlWrites.claim_idempotency_key`). The partial unique index on
  ``(tenant, idempotency_key)`` decides between two transactions that give one key to two
  runs at once, on any number of machines: the second waits for the first, then fails on the
  index, and reads the run that holds the key (a savepoint keeps its transaction usable, so
  that the caller rolls back its own run with the answer in hand). A repeated submission
  usually finds the key with one indexed read first (:meth:`RunControlQueries.find_keyed_run`).
- **Reruns:** the run's graph with each task's status (:meth:`RunControlWrites.run_graph`),
  the switch of a run to another version of its workflow, and the context a rerun merges
  over its first tasks' input, read back when those tasks are claimed (it is kept in the
  rerun's event, so it is history too: what the operator changed).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloacina.store.sql_common import chunks, marks

#: The event that records a rerun (who, which tasks, the context, the version).
RERUN_EVENT = "execution_rerun"


@dataclass(frozen=True, slots=True)
class KeyedRun:
    """The run that holds an idempotency key, and the fingerprint of what it was given."""

    execution_id: str
    fingerprint: str | None


@dataclass(frozen=True, slots=True)
class GraphTask:
    """A task of a run, for a rerun's choice: its status, why it was skipped, and its
    dependencies (as the run stored them)."""

    task_id: str
    status: str
    skip_reason: str | None
    dependencies: tuple[str, ...]
    attempt: int = 0


def _unique_violation(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    return getattr(exc, "sqlstate", None) == "23505"  # psycopg: unique_violation


class RunControlQueries:
    """Run control's reads (a mixin of the SQL store: it provides ``_fetchone``)."""

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def find_keyed_run(self, tenant: str, key: str) -> KeyedRun | None:
        """The run of ``tenant`` that holds idempotency key ``key``, if any (one indexed
        read, no lock)."""
        row = self._fetchone(
            "SELECT id, idempotency_fingerprint FROM workflow_executions"
            " WHERE tenant = ? AND idempotency_key = ?",
            (tenant, key),
        )
        return None if row is None else KeyedRun(str(row[0]), row[1])

    def finished_run_ids(
        self,
        statuses: Sequence[str],
        *,
        workflow_name: str | None = None,
        since: float | None = None,
        limit: int = 10_000,
    ) -> list[str]:
        """Ids of runs in one of ``statuses`` (of ``workflow_name``, created at or after
        ``since``), oldest first, at most ``limit``."""
        where = [f"status IN ({', '.join('?' for _ in statuses)})"]
        params: list[Any] = list(statuses)
        if workflow_name is not None:
            where.append("workflow_name = ?")
            params.append(workflow_name)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        rows = self._fetchall(
            f"SELECT id FROM workflow_executions WHERE {' AND '.join(where)}"
            f" ORDER BY created_at, id LIMIT {int(limit)}",
            params,
        )
        return [str(r[0]) for r in rows]


class RunControlWrites:
    """Run control's part of a write transaction (a mixin of the SQL write transaction: it
    provides the connection)."""

    __slots__ = ()

    _c: Any

    def claim_idempotency_key(
        self, execution_id: str, tenant: str, key: str, fingerprint: str
    ) -> KeyedRun | None:
        """Give run ``execution_id`` (created in this transaction) the idempotency key; if
        another run of the tenant holds it already, that run instead (then roll this
        transaction back: the run made in it must not stay)."""
        self._c.execute("SAVEPOINT idempotency_key")
        try:
            self._c.execute(
                "UPDATE workflow_executions SET idempotency_key = ?,"
                " idempotency_fingerprint = ? WHERE id = ?",
                (key, fingerprint, execution_id),
            )
        except Exception as exc:
            if not _unique_violation(exc):
                raise
            self._c.execute("ROLLBACK TO SAVEPOINT idempotency_key")
            # The holder committed before the index let us fail: a fresh read sees it.
            row = self._c.execute(
                "SELECT id, idempotency_fingerprint FROM workflow_executions"
                " WHERE tenant = ? AND idempotency_key = ?",
                (tenant, key),
            ).fetchone()
            if row is None:  # the holder is gone again (pruned): the caller may retry
                raise
            return KeyedRun(str(row[0]), row[1])
        self._c.execute("RELEASE SAVEPOINT idempotency_key")
        return None

    def run_graph(self, execution_id: str) -> list[GraphTask]:
        """The run's tasks in their order, with status, skip reason and dependencies."""
        rows = self._c.execute(
            "SELECT t.task_id, t.status, t.skip_reason, d.dependencies, t.attempt"
            " FROM task_executions t"
            " LEFT JOIN task_dependencies d"
            " ON d.execution_id = t.execution_id AND d.task_id = t.task_id"
            # Not a mapped task's instances: they go and come back with their task.
            " WHERE t.execution_id = ? AND t.map_parent IS NULL ORDER BY t.task_index, t.id",
            (execution_id,),
        ).fetchall()
        return [
            GraphTask(
                task_id, status, skip_reason, tuple(json.loads(deps) if deps else ()), attempt
            )
            for task_id, status, skip_reason, deps, attempt in rows
        ]

    def record_skipped(self, execution_id: str, task_ids: Sequence[str], now: float) -> None:
        """Before a rerun resets them: tasks skipped without ever starting keep their verdict
        as attempt 1 (outcome ``skipped``, with its reason), so the rerun's attempt is 2,
        like every other task's that ran before (and the context of a rerun, given to its
        first tasks from attempt 2 on, reaches them too)."""
        for part in chunks(task_ids):
            where = (
                f" WHERE execution_id = ? AND task_id IN ({marks(len(part))})"
                " AND status = 'skipped' AND attempt = 0"
            )
            params = (execution_id, *part)
            self._c.execute(
                "INSERT INTO task_attempts (execution_id, task_id, attempt, recovery, outcome,"
                " worker_id, started_at, finished_at, error, error_traceback, skip_reason)"
                " SELECT execution_id, task_id, 1, 0, 'skipped', NULL, NULL,"
                f" COALESCE(finished_at, ?), NULL, NULL, skip_reason FROM task_executions{where}",
                (now, *params),
            )
            self._c.execute(f"UPDATE task_executions SET attempt = 1{where}", params)

    def switch_version(self, execution_id: str, version: str, package_id: str | None) -> None:
        """Pin the run to another version of its workflow (a rerun onto new code)."""
        self._c.execute(
            "UPDATE workflow_executions SET workflow_version = ?, package_id = ? WHERE id = ?",
            (version, package_id, execution_id),
        )

    def _last_rerun(self, execution_id: str) -> dict[str, Any] | None:
        row = self._c.execute(
            "SELECT detail FROM execution_events WHERE execution_id = ? AND event = ?"
            " ORDER BY id DESC LIMIT 1",
            (execution_id, RERUN_EVENT),
        ).fetchone()
        if row is None or not row[0]:
            return None
        detail: dict[str, Any] = json.loads(row[0])
        return detail

    def rerun_base(self, execution_id: str, task_id: str) -> int:
        """How many attempts the task had made before the run's last rerun reset it (0: it
        was not rerun): its retries count from there, a fresh budget for each rerun."""
        detail = self._last_rerun(execution_id)
        if detail is None:
            return 0
        return int(detail.get("attempts", {}).get(task_id, 0))

    def rerun_patches(self, execution_ids: Sequence[str]) -> dict[str, tuple[set[str], str]]:
        """Per run, the context its last rerun merges over its first tasks' input: ``{run:
        (first task ids, context JSON)}``, for the runs whose last rerun gave one."""
        found: dict[str, tuple[set[str], str]] = {}
        for eid in execution_ids:
            detail = self._last_rerun(eid)
            if detail is None:
                continue
            context = detail.get("context")
            if context:
                found[eid] = (set(detail.get("first", ())), json.dumps(context))
        return found
