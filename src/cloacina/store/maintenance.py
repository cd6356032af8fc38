"""Workers and retention: the store's bookkeeping outside the task hot path (SQLAlchemy Core,
backend-neutral)."""

from __future__ import annotations

from sqlalchemy import (
    Engine,
    Float,
    and_,
    case,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from cloacina.store.clock import db_now_sql
from cloacina.store.records import WorkerRow
from cloacina.store.tables import (
    execution_events,
    task_attempts,
    task_executions,
    task_outputs,
    workers,
    workflow_executions,
)

TERMINAL = ("completed", "failed", "cancelled")


class MaintenanceQueries:
    """Workers table and pruning of old runs, given a SQLAlchemy engine."""

    engine: Engine

    # ---- workers -----------------------------------------------------------------------------
    def db_now(self) -> ColumnElement[float]:
        """The database's clock in seconds since the epoch (see :mod:`cloacina.store.clock`)."""
        return literal_column(db_now_sql(self.engine.dialect.name), Float)

    def register_worker(self, row: WorkerRow) -> None:
        values = {c.name: getattr(row, c.name) for c in workers.c}
        values["last_heartbeat"] = self.db_now()
        with self.engine.begin() as conn:
            conn.execute(delete(workers).where(workers.c.id == row.id))
            conn.execute(insert(workers).values(**values))

    def worker_heartbeat(self, worker_id: str, now: float, running_tasks: int) -> None:
        """Refresh a worker's heartbeat (stamped with the database's clock, not ``now``). A
        worker reported lost (silent for too long) that beats again is running again."""
        with self.engine.begin() as conn:
            conn.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(
                    last_heartbeat=self.db_now(),
                    running_tasks=running_tasks,
                    status=case((workers.c.status == "lost", "running"), else_=workers.c.status),
                )
            )

    def worker_stopped(self, worker_id: str, now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(status="stopped", stopped_at=now, running_tasks=0, last_heartbeat=now)
            )

    def list_workers(self, include_stopped: bool = False) -> list[WorkerRow]:
        """The workers, oldest first (stopped ones too with ``include_stopped``). Their
        ``running_tasks`` is what each holds now, its running task rows, not the count it
        last reported: that one stays stale in the row of a worker that died, after another
        worker took its tasks back."""
        held = (
            select(task_executions.c.worker_id, func.count().label("held"))
            .where(task_executions.c.status == "running", task_executions.c.worker_id.is_not(None))
            .group_by(task_executions.c.worker_id)
            .subquery()
        )
        columns = [
            func.coalesce(held.c.held, 0).label(c.name) if c.name == "running_tasks" else c
            for c in workers.c
        ]
        query = (
            select(*columns)
            .select_from(workers.outerjoin(held, held.c.worker_id == workers.c.id))
            .order_by(workers.c.started_at)
        )
        if not include_stopped:
            query = query.where(workers.c.status != "stopped")
        with self.engine.connect() as conn:
            return [WorkerRow(**r._mapping) for r in conn.execute(query)]

    def running_tasks_by_worker(self) -> list[tuple[str, str, str]]:
        """``(worker_id, execution_id, task_id)`` of every running task a worker holds,
        ordered by worker (the claim index serves the status test)."""
        query = (
            select(
                task_executions.c.worker_id,
                task_executions.c.execution_id,
                task_executions.c.task_id,
            )
            .where(task_executions.c.status == "running", task_executions.c.worker_id.is_not(None))
            .order_by(
                task_executions.c.worker_id,
                task_executions.c.execution_id,
                task_executions.c.task_id,
            )
        )
        with self.engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(query)]

    def release_claims(self, worker_id: str, now: float) -> int:
        """Hand back the tasks a stopping worker still runs: ready again for another worker
        at once (not counted as a retry or a recovery), each with a ``task_handed_back``
        event."""
        with self.engine.begin() as conn:
            held = conn.execute(
                select(
                    task_executions.c.execution_id,
                    task_executions.c.task_id,
                    task_executions.c.attempt,
                ).where(
                    task_executions.c.worker_id == worker_id,
                    task_executions.c.status == "running",
                )
            ).fetchall()
            if held:
                conn.execute(
                    insert(execution_events),
                    [
                        {
                            "execution_id": r[0],
                            "task_id": r[1],
                            "event": "task_handed_back",
                            "attempt": r[2],
                            "detail": None,
                            "created_at": now,
                        }
                        for r in held
                    ],
                )
            result = conn.execute(
                update(task_executions)
                .where(
                    task_executions.c.worker_id == worker_id,
                    task_executions.c.status == "running",
                )
                .values(
                    status="ready",
                    claim_token=None,
                    worker_id=None,
                    heartbeat_at=None,
                    attempt=task_executions.c.attempt - 1,
                )
            )
        return int(result.rowcount or 0)

    def prune_workers(self, gone_before: float) -> int:
        """Forget workers that stopped, or went silent, before ``gone_before`` and hold no
        running task (a silent one that does keeps its row until its tasks are taken back).
        Returns how many."""
        holds_claims = (
            select(task_executions.c.id)
            .where(
                task_executions.c.worker_id == workers.c.id,
                task_executions.c.status == "running",
            )
            .exists()
        )
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(workers).where(
                    or_(
                        and_(workers.c.status == "stopped", workers.c.stopped_at < gone_before),
                        and_(workers.c.status != "stopped", workers.c.last_heartbeat < gone_before),
                    ),
                    ~holds_claims,
                )
            )
        return int(result.rowcount or 0)

    # ---- retention ---------------------------------------------------------------------------
    def count_finished_before(self, finished_before: float) -> int:
        """How many finished runs ended before ``finished_before`` (what a prune removes)."""
        query = select(func.count(workflow_executions.c.id)).where(
            workflow_executions.c.status.in_(TERMINAL),
            workflow_executions.c.finished_at < finished_before,
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def prune_executions(self, finished_before: float, batch_size: int = 500) -> int:
        """Delete finished runs (and their tasks, outputs and events) that ended before
        ``finished_before``, ``batch_size`` runs per transaction. Returns how many."""
        total = 0
        while True:
            with self.engine.begin() as conn:
                ids = [
                    r[0]
                    for r in conn.execute(
                        select(workflow_executions.c.id)
                        .where(
                            workflow_executions.c.status.in_(TERMINAL),
                            workflow_executions.c.finished_at < finished_before,
                        )
                        .limit(batch_size)
                    )
                ]
                if not ids:
                    return total
                task_ids = select(task_executions.c.id).where(
                    task_executions.c.execution_id.in_(ids)
                )
                conn.execute(
                    delete(task_outputs).where(task_outputs.c.task_execution_id.in_(task_ids))
                )
                conn.execute(
                    delete(execution_events).where(execution_events.c.execution_id.in_(ids))
                )
                conn.execute(delete(task_attempts).where(task_attempts.c.execution_id.in_(ids)))
                conn.execute(delete(task_executions).where(task_executions.c.execution_id.in_(ids)))
                conn.execute(delete(workflow_executions).where(workflow_executions.c.id.in_(ids)))
            total += len(ids)
