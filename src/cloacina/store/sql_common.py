"""SQL pieces shared by the write transaction (``store/sql.py``) and the reads
(``store/sql_reads.py``): column lists, parameter helpers, row conversions, claim tokens."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from cloacina.model.status import ExecutionStatus, TaskStatus
from cloacina.store.records import ExecutionRow, TaskRow, WorkflowKey

EXEC_COLS = (
    "id, tenant, package, workflow_name, workflow_version, status, input_context, final_context,"
    " error, tasks_total, tasks_remaining, tasks_failed, created_at, started_at, finished_at"
)
TASK_COLS = (
    "id, execution_id, task_id, task_index, status, attempt, max_attempts, recovery_count,"
    " error, error_traceback, skip_reason, retry_at, worker_id, heartbeat_at, started_at,"
    " finished_at"
)
ATTEMPT_COLS = (
    "id, execution_id, task_id, attempt, recovery, outcome, worker_id, started_at, finished_at,"
    " error, error_traceback, skip_reason"
)
CHUNK = 500  # bound on host parameters per statement


class ClaimTokens:
    """Unique claim tokens (``<prefix><n>``), safe to draw from any thread: a generator
    is not (two threads in ``next()`` at once raise "generator already executing"), while
    ``next()`` of an ``itertools.count`` is atomic."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    def __iter__(self) -> ClaimTokens:
        return self

    def __next__(self) -> str:
        return f"{self._prefix}{next(self._counter)}"


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def marks(n: int) -> str:
    return ",".join("?" * n)


def key_filter(keys: Sequence[WorkflowKey]) -> tuple[str, list[str]]:
    """``(name, version) IN (...)`` on the run's own columns (an index can serve it, unlike
    a concatenation of the two), and its parameters. One key (the common worker) is two
    plain comparisons, which SQLite checks faster than a list."""
    if len(keys) == 1:
        ((name, version),) = keys
        return "w.workflow_name = ? AND w.workflow_version = ?", [name, version]
    sql = f"(w.workflow_name, w.workflow_version) IN (VALUES {','.join(['(?,?)'] * len(keys))})"
    return sql, [part for key in keys for part in key]


def get_outputs(conn: Any, execution_id: str, task_ids: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in chunks(task_ids):
        for task_id, ctx in conn.execute(
            "SELECT task_id, context FROM task_outputs WHERE execution_id=?"
            f" AND task_id IN ({marks(len(part))})",
            (execution_id, *part),
        ):
            out[task_id] = ctx
    return out


def execution_row(row: Sequence[Any]) -> ExecutionRow:
    values = list(row)
    values[5] = ExecutionStatus(values[5])
    return ExecutionRow(*values)


def task_row(row: Sequence[Any]) -> TaskRow:
    values = list(row)
    values[4] = TaskStatus(values[4])
    return TaskRow(*values)
