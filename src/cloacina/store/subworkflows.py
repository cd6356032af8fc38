"""Sub-workflows in SQL (DESIGN §11): child runs linked to the task that started them.

A child run records its parent run and task (``parent_execution_id``, ``parent_task_id``)
and its depth. It is created in the transaction that claims its sub-workflow task, with the
idempotency key :func:`child_key` (the task's row and attempt): the unique index on keys
makes one child per attempt, whoever claims it. The task then stays ``running`` but held by
no worker (no claim token, no heartbeat), so no stale-claim recovery takes it back while the
child runs. When the child ends, the transaction that ends it makes the task ``ready``
again for the same attempt (:meth:`SubWrites.child_ended`); the engine that claims it finds
the child ended and completes or fails the task with the child's outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloacina.store.dialect import POSTGRESQL, Dialect

#: How the idempotency keys of child runs start (refused in the keys users give).
CHILD_KEY_PREFIX = "cloacina-subworkflow:"


def child_key(task_row_id: int, attempt: int) -> str:
    """The idempotency key of the child run of one attempt of a sub-workflow task."""
    return f"{CHILD_KEY_PREFIX}{task_row_id}:{attempt}"


@dataclass(frozen=True, slots=True)
class ChildRun:
    """A sub-workflow task's child run as its parent task needs it."""

    execution_id: str
    status: str
    final_context: str | None
    error: str | None
    created_at: float | None = None


@dataclass(frozen=True, slots=True)
class RunFamily:
    """A run's place among sub-workflows: its parent (run and task), depth and children
    (ids, oldest first)."""

    parent_execution_id: str | None
    parent_task_id: str | None
    depth: int
    children: tuple[str, ...]


#: The sub-workflow task of a child that ended, back to ready for its same attempt (only
#: while it waits for its child: running, held by no claim).
_CHILD_ENDED = (
    "UPDATE task_executions SET status='ready', attempt=attempt-1"
    " WHERE execution_id = (SELECT parent_execution_id FROM workflow_executions WHERE id=?)"
    " AND task_id = (SELECT parent_task_id FROM workflow_executions WHERE id=?)"
    " AND status='running' AND claim_token IS NULL AND map_parent IS NULL"
    " AND map_total IS NULL"
)


class SubWrites:
    """Sub-workflows' part of a write transaction (a mixin of the SQL write transaction)."""

    __slots__ = ()

    _c: Any
    dialect: Dialect

    def run_depth(self, execution_id: str) -> int:
        """How deep a run is among sub-workflows (0: a top-level run)."""
        row = self._c.execute(
            "SELECT depth FROM workflow_executions WHERE id=?", (execution_id,)
        ).fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def find_child(self, tenant: str, key: str) -> ChildRun | None:
        """The child run made for one attempt (its :func:`child_key`), if any."""
        row = self._c.execute(
            "SELECT id, status, final_context, error, created_at FROM workflow_executions"
            " WHERE tenant=? AND idempotency_key=?",
            (tenant, key),
        ).fetchone()
        return None if row is None else ChildRun(str(row[0]), str(row[1]), *row[2:])

    def restore_start(self, row_id: int, started_at: float) -> None:
        """A sub-workflow task claimed again to settle with its child keeps the start of
        its attempt (when it started the child), not the time of that claim."""
        self._c.execute("UPDATE task_executions SET started_at=? WHERE id=?", (started_at, row_id))

    def link_child(
        self,
        child_id: str,
        parent_execution_id: str,
        parent_task_id: str,
        depth: int,
        key: str,
    ) -> None:
        """Record a run just created as the child of a sub-workflow task's attempt."""
        self._c.execute(
            "UPDATE workflow_executions SET parent_execution_id=?, parent_task_id=?, depth=?,"
            " idempotency_key=? WHERE id=?",
            (parent_execution_id, parent_task_id, depth, key, child_id),
        )

    def park_task(self, row_id: int, claim_token: str) -> bool:
        """A claimed sub-workflow task waits for its child: running, held by no worker (so
        no heartbeat is missed and no stale-claim recovery takes it). False if the claim
        was lost."""
        cur = self._c.execute(
            "UPDATE task_executions SET claim_token=NULL, worker_id=NULL, heartbeat_at=NULL"
            " WHERE id=? AND claim_token=? AND status='running'",
            (row_id, claim_token),
        )
        return bool(cur.rowcount == 1)

    def child_ended(self, execution_id: str) -> bool:
        """A run ended: if it is a child whose task waits for it, that task is ready again
        (for the same attempt), for an engine that has its workflow to settle it. Nothing
        for a run without a parent (two indexed reads; deferred where the backend can).
        True if a task was made ready here; on PostgreSQL always False: the workers
        (this one too) hear of it by NOTIFY at commit."""
        if self.dialect is POSTGRESQL:
            # Sent with the next statement or the commit (no round trip of its own); the
            # workers are notified only if a task was made ready.
            self._c.defer(
                f"WITH t AS ({_CHILD_ENDED} RETURNING id) SELECT pg_notify(?, '') FROM t",
                (execution_id, execution_id, getattr(self, "_channel", "")),
            )
            return False
        cur = self._c.execute(_CHILD_ENDED, (execution_id, execution_id))
        return bool(cur.rowcount == 1)

    def live_children(self, execution_ids: Sequence[str]) -> list[str]:
        """The unfinished child runs of these runs (for a cascade of cancel or pause)."""
        out: list[str] = []
        for eid in execution_ids:
            out.extend(
                str(r[0])
                for r in self._c.execute(
                    "SELECT id FROM workflow_executions WHERE parent_execution_id=?"
                    " AND status IN ('running', 'paused') ORDER BY created_at, id",
                    (eid,),
                ).fetchall()
            )
        return out


class SubReads:
    """Reading runs' sub-workflow links (a mixin of the SQL store)."""

    if TYPE_CHECKING:

        def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

        def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def run_family(self, execution_id: str) -> RunFamily:
        """A run's parent, depth and child runs (two indexed reads)."""
        row = self._fetchone(
            "SELECT parent_execution_id, parent_task_id, depth FROM workflow_executions WHERE id=?",
            (execution_id,),
        )
        children = self._fetchall(
            "SELECT id FROM workflow_executions WHERE parent_execution_id=?"
            " ORDER BY created_at, id",
            (execution_id,),
        )
        return RunFamily(
            None if row is None else row[0],
            None if row is None else row[1],
            0 if row is None or row[2] is None else int(row[2]),
            tuple(str(r[0]) for r in children),
        )
