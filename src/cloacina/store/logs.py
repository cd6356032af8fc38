"""Task logs: the captured output of each attempt, in chunks (SQLAlchemy Core; backend-neutral).

The engine appends chunks inside its own write transactions (``WriteTx.add_task_logs``);
these are the reads the faces need, and an append for writers outside the engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, insert, select

from cloacina.model.status import TaskStatus
from cloacina.store.records import LogChunkRow, NewLogChunk
from cloacina.store.tables import task_executions, task_logs

_COLUMNS = (
    task_logs.c.id,
    task_logs.c.execution_id,
    task_logs.c.task_id,
    task_logs.c.attempt,
    task_logs.c.stream,
    task_logs.c.created_at,
    task_logs.c.text,
)


class LogQueries:
    """Reading and appending attempts' output, given a SQLAlchemy engine."""

    engine: Engine

    def append_task_logs(self, chunks: Sequence[NewLogChunk]) -> None:
        """Append chunks in one transaction (their order is the order they are read in)."""
        if not chunks:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(task_logs), [c._asdict() for c in chunks])

    def read_task_logs(
        self,
        execution_id: str,
        task_id: str,
        attempt: int,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[LogChunkRow]:
        """The chunks of one attempt with an id above ``after_id``, in order."""
        query = (
            select(*_COLUMNS)
            .where(
                task_logs.c.execution_id == execution_id,
                task_logs.c.task_id == task_id,
                task_logs.c.attempt == attempt,
                task_logs.c.id > after_id,
            )
            .order_by(task_logs.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [LogChunkRow(*row) for row in conn.execute(query)]

    def read_run_logs(
        self, execution_id: str, after_id: int = 0, limit: int | None = None
    ) -> list[LogChunkRow]:
        """The chunks of every attempt of every task of a run with an id above
        ``after_id``, in the order they were stored."""
        query = (
            select(*_COLUMNS)
            .where(task_logs.c.execution_id == execution_id, task_logs.c.id > after_id)
            .order_by(task_logs.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [LogChunkRow(*row) for row in conn.execute(query)]

    def task_attempt_state(self, execution_id: str, task_id: str) -> tuple[int, TaskStatus] | None:
        """``(attempt, status)`` of a task of a run (attempt 0: it has not started), or
        None if the run has no such task."""
        query = select(task_executions.c.attempt, task_executions.c.status).where(
            task_executions.c.execution_id == execution_id,
            task_executions.c.task_id == task_id,
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (int(row[0]), TaskStatus(row[1]))
