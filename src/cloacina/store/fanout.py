"""Dynamic fan-out in SQL (DESIGN §11, ``map_over``): a mapped task's instances.

An instance is a ``task_executions`` row (``map_parent`` set), claimed, retried, recovered
and fenced like any task, so the claim query is the ordinary one. ``max_parallel`` holds
across workers without touching it: only a window of instances is ever ``ready`` or
``running`` (``map_next`` is the next index to open), and the window moves in the
transaction that settles instances, under the run's lock. Outputs are stored per instance
and gathered in index order, a page at a time, when the last instance settles.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from cloacina.model.status import TaskStatus
from cloacina.store.dialect import Dialect
from cloacina.store.records import Completion, MapCounts, MapInstanceRow, map_instance_id

#: Rows per statement when instances are created, and per page when outputs are gathered.
MAP_BATCH = 5000
#: Failed indexes named in a summary (the rest are counted).
FAILED_INDEXES_SHOWN = 20


class MapWrites:
    """Fan-out's part of a write transaction (a mixin of the SQL write transaction)."""

    __slots__ = ()

    _c: Any
    dialect: Dialect

    def _made_ready(self) -> None:
        """Rows became ready: other workers may be told (PostgreSQL NOTIFY)."""
        return None

    def start_map(
        self,
        execution_id: str,
        parent_row_id: int,
        claim_token: str,
        task_id: str,
        total: int,
        window: int | None,
        base_json: str,
    ) -> bool:
        """A claimed mapped task starts its map of ``total`` items: its counters (kept if a
        claim before this one started it already: the map goes on where it was) and
        ``base_json`` (its input without the list) as its provisional output. Its
        instances are made by :meth:`add_instances`. False if the claim was lost."""
        opened = total if window is None else min(window, total)
        row = self._c.execute(
            "UPDATE task_executions SET map_total=COALESCE(map_total, ?),"
            " map_remaining=COALESCE(map_remaining, ?), map_failed=COALESCE(map_failed, 0),"
            " map_next=COALESCE(map_next, ?)"
            " WHERE id=? AND claim_token=? AND status='running' RETURNING id",
            (total, total, opened, parent_row_id, claim_token),
        ).fetchone()
        if row is None:
            return False
        self._save(parent_row_id, execution_id, task_id, base_json)
        return True

    def add_instances(
        self,
        execution_id: str,
        parent_row_id: int,
        claim_token: str,
        task_id: str,
        items: Sequence[str],
        max_attempts: int,
        limit: int = MAP_BATCH,
    ) -> int | None:
        """Make up to ``limit`` more instances of a mapped task whose map started (items
        JSON, all of them: those made already are skipped), ready when inside its window;
        once the last is made, its claim is released (its instances carry the work). How
        many are made in all, or None if the claim was lost."""
        row = self._c.execute(
            "SELECT task_index, priority, map_next, (SELECT COALESCE(MAX(i.map_index) + 1, 0)"
            " FROM task_executions i WHERE i.map_parent = p.id) FROM task_executions p"
            " WHERE p.id=? AND p.claim_token=? AND p.status='running'",
            (parent_row_id, claim_token),
        ).fetchone()
        if row is None:
            return None
        task_index, priority, opened, start = (int(v) for v in row)
        end = min(len(items), start + limit)
        if end > start:
            self._insert_instances(
                execution_id,
                parent_row_id,
                task_id,
                task_index,
                priority,
                items[start:end],
                start,
                opened,
                max_attempts,
            )
            if start < opened:
                self._made_ready()
        if end >= len(items):
            self._c.execute(
                "UPDATE task_executions SET claim_token=NULL, worker_id=NULL, heartbeat_at=NULL"
                " WHERE id=? AND claim_token=?",
                (parent_row_id, claim_token),
            )
        return end

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
        """Instances ``first``, ``first + 1``... of ``items``; those below ``opened`` ready."""
        self._c.executemany(
            "INSERT INTO task_executions (execution_id, task_id, task_index, status,"
            " max_attempts, deps_total, deps_remaining, priority, map_parent, map_index,"
            " map_item) VALUES (?,?,?,?,?,0,0,?,?,?,?)",
            [
                (
                    execution_id,
                    map_instance_id(task_id, i),
                    task_index,
                    "ready" if i < opened else "pending",
                    max_attempts,
                    priority,
                    parent_row_id,
                    i,
                    item,
                )
                for i, item in enumerate(items, first)
            ],
        )

    def _save(self, row_id: int, execution_id: str, task_id: str, context_json: str) -> None:
        self._c.execute(
            "INSERT INTO task_outputs (task_execution_id, execution_id, task_id, context)"
            " VALUES (?,?,?,?) ON CONFLICT (task_execution_id) DO UPDATE SET"
            " context=excluded.context",
            (row_id, execution_id, task_id, context_json),
        )

    def complete_instances(self, items: Sequence[Completion]) -> list[Completion]:
        """Record instances that succeeded, each fenced by its claim, with its output (its
        return value, JSON); the ones whose claim held."""
        done: list[Completion] = []
        for item in items:
            claim = item.claim
            cur = self._c.execute(
                "UPDATE task_executions SET status='completed', finished_at=?,"
                " claim_token=NULL, heartbeat_at=NULL"
                " WHERE id=? AND claim_token=? AND status='running'",
                (item.finished_at, claim.row_id, claim.claim_token),
            )
            if cur.rowcount == 1:
                done.append(item)
        if done:
            self._c.executemany(
                "INSERT INTO task_outputs (task_execution_id, execution_id, task_id, context)"
                " VALUES (?,?,?,?) ON CONFLICT (task_execution_id) DO UPDATE SET"
                " context=excluded.context",
                [
                    (i.claim.row_id, i.claim.execution_id, i.claim.task_id, i.output_json)
                    for i in done
                ],
            )
        return done

    def instances_settled(
        self, parent_row_id: int, settled: int, failed: int, window: int | None
    ) -> tuple[int, int, int]:
        """``settled`` instances of a mapped task became terminal (``failed`` of them
        failed): count them off and, under ``max_parallel``, open as many more. Returns
        ``(remaining, failed, total)``."""
        if window is None:  # every instance was ready from the start: nothing to open
            row = self._c.execute(
                "UPDATE task_executions SET map_remaining=map_remaining-?,"
                " map_failed=map_failed+? WHERE id=?"
                " RETURNING map_remaining, map_failed, map_total",
                (settled, failed, parent_row_id),
            ).fetchone()
            return int(row[0]), int(row[1]), int(row[2])
        row = self._c.execute(
            "SELECT map_total, map_next FROM task_executions WHERE id=?", (parent_row_id,)
        ).fetchone()
        total, start = int(row[0]), int(row[1])
        end = min(total, start + settled)
        row = self._c.execute(
            "UPDATE task_executions SET map_remaining=map_remaining-?,"
            " map_failed=map_failed+?, map_next=? WHERE id=?"
            " RETURNING map_remaining, map_failed",
            (settled, failed, end, parent_row_id),
        ).fetchone()
        if end > start:
            self._c.execute(
                "UPDATE task_executions SET status='ready' WHERE map_parent=?"
                " AND map_index>=? AND map_index<? AND status='pending'",
                (parent_row_id, start, end),
            )
            self._made_ready()
        return int(row[0]), int(row[1]), total

    def map_outputs(self, parent_row_id: int, total: int) -> Iterator[tuple[str, str | None]]:
        """``(item, output)`` of each instance in index order (output None unless it
        completed), read a page at a time."""
        for start in range(0, total, MAP_BATCH):
            rows = self._c.execute(
                "SELECT t.map_item, CASE WHEN t.status='completed' THEN o.context END"
                " FROM task_executions t LEFT JOIN task_outputs o ON o.task_execution_id = t.id"
                " WHERE t.map_parent=? AND t.map_index>=? AND t.map_index<?"
                " ORDER BY t.map_index",
                (parent_row_id, start, start + MAP_BATCH),
            ).fetchall()
            yield from ((str(item), output) for item, output in rows)

    def map_base(self, parent_row_id: int) -> str | None:
        """A mapped task's input without its list (kept when its instances were made)."""
        row = self._c.execute(
            "SELECT context FROM task_outputs WHERE task_execution_id=?", (parent_row_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def failed_map_indexes(self, parent_row_id: int, limit: int) -> list[int]:
        rows = self._c.execute(
            "SELECT map_index FROM task_executions WHERE map_parent=? AND status='failed'"
            " ORDER BY map_index LIMIT ?",
            (parent_row_id, limit),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def finish_map_task(
        self,
        parent_row_id: int,
        status: TaskStatus,
        now: float,
        *,
        execution_id: str,
        task_id: str,
        output_json: str | None = None,
        error: str | None = None,
    ) -> bool:
        """A mapped task's instances are all terminal: record its own status (and output)."""
        cur = self._c.execute(
            "UPDATE task_executions SET status=?, finished_at=?, error=?, claim_token=NULL,"
            " heartbeat_at=NULL WHERE id=? AND status='running'",
            (status.value, now, error, parent_row_id),
        )
        if cur.rowcount != 1:
            return False
        if output_json is not None:
            self._save(parent_row_id, execution_id, task_id, output_json)
        elif status != TaskStatus.COMPLETED:
            self._c.execute("DELETE FROM task_outputs WHERE task_execution_id=?", (parent_row_id,))
        return True

    def task_id_of(self, row_id: int) -> str | None:
        row = self._c.execute(
            "SELECT task_id FROM task_executions WHERE id=?", (row_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def map_instance_error(self, parent_row_id: int, index: int) -> str | None:
        """The error of a mapped task's instance ``index``."""
        row = self._c.execute(
            "SELECT error FROM task_executions WHERE map_parent=? AND map_index=?",
            (parent_row_id, index),
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def map_parent_of(self, row_id: int) -> int | None:
        row = self._c.execute(
            "SELECT map_parent FROM task_executions WHERE id=?", (row_id,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])


class MapReads:
    """Reading mapped tasks' instances (a mixin of the SQL store)."""

    if TYPE_CHECKING:

        def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def map_counts(
        self, execution_id: str, parents: Sequence[tuple[str, int, int]]
    ) -> dict[str, MapCounts]:
        """The instances of each mapped task (``(task id, row id, total)``) by status,
        with the first failed indexes: a few grouped reads, whatever the run's size."""
        out: dict[str, MapCounts] = {}
        for task_id, row_id, total in parents:
            by_status = {
                str(status): int(n)
                for status, n in self._fetchall(
                    "SELECT status, COUNT(*) FROM task_executions WHERE map_parent=?"
                    " GROUP BY status",
                    (row_id,),
                )
            }
            failed: list[int] = []
            if by_status.get("failed"):
                failed = [
                    int(r[0])
                    for r in self._fetchall(
                        "SELECT map_index FROM task_executions WHERE map_parent=?"
                        " AND status='failed' ORDER BY map_index LIMIT ?",
                        (row_id, FAILED_INDEXES_SHOWN),
                    )
                ]
            out[task_id] = MapCounts(
                total,
                by_status,
                tuple(failed),
                by_status.get("failed", 0) > len(failed),
            )
        return out

    def map_instances(
        self,
        execution_id: str,
        task_id: str,
        *,
        after_index: int = -1,
        limit: int = 100,
        status: str | None = None,
    ) -> list[MapInstanceRow]:
        """A page of a mapped task's instances, by index, after ``after_index``."""
        where = " AND t.status=?" if status else ""
        params: tuple[Any, ...] = (execution_id, task_id, after_index)
        if status:
            params += (status,)
        rows = self._fetchall(
            "SELECT t.map_index, t.task_id, t.status, t.attempt, t.max_attempts, t.error,"
            " t.worker_id, t.started_at, t.finished_at FROM task_executions p"
            " JOIN task_executions t ON t.map_parent = p.id"
            " WHERE p.execution_id=? AND p.task_id=? AND t.map_index>?"
            f"{where} ORDER BY t.map_index LIMIT ?",
            (*params, limit),
        )
        return [
            MapInstanceRow(r[0], r[1], TaskStatus(r[2]), r[3], r[4], r[5], r[6], r[7], r[8])
            for r in rows
        ]
