"""Backfills' SQL: the ``backfills`` table and the checks of the transaction that paces one.

A backfill is a range of a workflow's scheduled times, run as one object. Its runs are made
by the engines of every runner that executes tasks, a few at a time: a write transaction
claims the backfill's row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: another runner pacing
it meanwhile skips it; SQLite has one writer), counts its unfinished runs, inserts runs up to
``max_parallel`` and moves the row's cursor (``next_time``) past them before it commits, so
each time becomes a run once however many runners pace the backfill.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from cloacina.store.dialect import Dialect

#: A run's statuses while it is unfinished (it holds one of the backfill's parallel slots).
UNFINISHED = ("pending", "running", "paused")

#: A backfill's statuses: ``running`` is paced, ``paused`` makes no new runs (its runs go
#: on), the others are final.
BACKFILL_STATUSES = ("running", "paused", "completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class BackfillRow:
    """A row of ``backfills``."""

    id: str
    workflow: str
    cron: str
    timezone: str
    context: str  # JSON
    start_at: float
    end_at: float
    only_missing: bool
    max_parallel: int
    status: str
    total: int
    next_time: float | None  # the next scheduled time to make a run for; None: all made
    created_runs: int
    skipped: int
    created_at: float
    updated_at: float
    finished_at: float | None


_COLUMNS = (
    "id, workflow, cron, timezone, context, start_at, end_at, only_missing, max_parallel,"
    " status, total, next_time, created_runs, skipped, created_at, updated_at, finished_at"
)


def _row(r: Sequence[Any]) -> BackfillRow:
    return BackfillRow(
        id=r[0],
        workflow=r[1],
        cron=r[2],
        timezone=r[3],
        context=r[4],
        start_at=float(r[5]),
        end_at=float(r[6]),
        only_missing=bool(r[7]),
        max_parallel=int(r[8]),
        status=r[9],
        total=int(r[10]),
        next_time=None if r[11] is None else float(r[11]),
        created_runs=int(r[12]),
        skipped=int(r[13]),
        created_at=float(r[14]),
        updated_at=float(r[15]),
        finished_at=None if r[16] is None else float(r[16]),
    )


class BackfillQueries:
    """The ``backfills`` table and its runs' counts, given a SQLAlchemy engine."""

    engine: Engine

    def insert_backfill(self, row: BackfillRow) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO backfills ({_COLUMNS}) VALUES (:id, :workflow, :cron,"
                    " :timezone, :context, :start_at, :end_at, :only_missing, :max_parallel,"
                    " :status, :total, :next_time, :created_runs, :skipped, :created_at,"
                    " :updated_at, :finished_at)"
                ),
                {
                    "id": row.id,
                    "workflow": row.workflow,
                    "cron": row.cron,
                    "timezone": row.timezone,
                    "context": row.context,
                    "start_at": row.start_at,
                    "end_at": row.end_at,
                    "only_missing": int(row.only_missing),
                    "max_parallel": row.max_parallel,
                    "status": row.status,
                    "total": row.total,
                    "next_time": row.next_time,
                    "created_runs": row.created_runs,
                    "skipped": row.skipped,
                    "created_at": row.created_at,
                    "updated_at": row.updated_at,
                    "finished_at": row.finished_at,
                },
            )

    def list_backfill_rows(self, limit: int = 100) -> list[BackfillRow]:
        """The newest backfills first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM backfills ORDER BY created_at DESC, id DESC"
                    " LIMIT :limit"
                ),
                {"limit": limit},
            )
            return [_row(r) for r in rows]

    def find_backfill_rows(self, id_or_prefix: str, limit: int = 10) -> list[BackfillRow]:
        """The backfill with this id, else those whose id starts with it."""
        with self.engine.connect() as conn:
            exact = conn.execute(
                text(f"SELECT {_COLUMNS} FROM backfills WHERE id = :id"), {"id": id_or_prefix}
            ).first()
            if exact is not None:
                return [_row(exact)]
            rows = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM backfills WHERE id LIKE :prefix ORDER BY id"
                    " LIMIT :limit"
                ),
                # Ids are uuids: a wildcard in the prefix matches nothing of them.
                {"prefix": id_or_prefix.replace("%", "").replace("_", "") + "%", "limit": limit},
            )
            return [_row(r) for r in rows]

    def backfill_run_counts(self, backfill_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """How many of each backfill's runs are in each status (from the run index)."""
        if not backfill_ids:
            return {}
        marks = ", ".join(f":b{i}" for i in range(len(backfill_ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT backfill_id, status, count(*) FROM workflow_executions"
                    f" WHERE backfill_id IN ({marks}) GROUP BY backfill_id, status"
                ),
                {f"b{i}": b for i, b in enumerate(backfill_ids)},
            )
            out: dict[str, dict[str, int]] = {b: {} for b in backfill_ids}
            for backfill_id, status, count in rows:
                out[backfill_id][status] = int(count)
            return out

    def backfill_unfinished_runs(self, backfill_id: str) -> list[str]:
        """The ids of the backfill's runs that have not ended."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id FROM workflow_executions WHERE backfill_id = :id"
                    " AND status IN ('pending', 'running', 'paused') ORDER BY created_at, id"
                ),
                {"id": backfill_id},
            )
            return [r[0] for r in rows]

    def set_backfill_status(
        self, backfill_id: str, status: str, from_statuses: Sequence[str], now: float
    ) -> bool:
        """Move a backfill to ``status`` if it is in one of ``from_statuses`` (a final
        status stamps ``finished_at``)."""
        marks = ", ".join(f":s{i}" for i in range(len(from_statuses)))
        final = status not in ("running", "paused")
        with self.engine.begin() as conn:
            result = conn.execute(
                text(
                    "UPDATE backfills SET status = :status, updated_at = :now"
                    + (", finished_at = :now" if final else "")
                    + f" WHERE id = :id AND status IN ({marks})"
                ),
                {
                    "status": status,
                    "now": now,
                    "id": backfill_id,
                    **{f"s{i}": s for i, s in enumerate(from_statuses)},
                },
            )
            return bool(result.rowcount)

    def running_backfills(self, limit: int = 100) -> list[tuple[str, bool]]:
        """The backfills being paced, each with whether a pacing step has something to do
        now: a run to make (fewer than ``max_parallel`` unfinished and times left) or the
        backfill to finish (no time left, every run ended). A read, no lock: the engine's
        check, so that a step's write transaction is taken only when it will act."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT b.id, b.max_parallel, b.next_time, (SELECT count(*)"
                    " FROM workflow_executions w WHERE w.backfill_id = b.id"
                    " AND w.status IN ('pending', 'running', 'paused'))"
                    " FROM backfills b WHERE b.status = 'running'"
                    " ORDER BY b.created_at, b.id LIMIT :limit"
                ),
                {"limit": limit},
            )
            return [
                (bid, (unfinished < cap) if next_time is not None else unfinished == 0)
                for bid, cap, next_time, unfinished in rows
            ]


class BackfillWrites:
    """The pacing transaction's statements (a mixin of the SQL write transaction)."""

    _c: Any
    dialect: Dialect

    def claim_backfill(self, backfill_id: str) -> BackfillRow | None:
        """Lock a running backfill's row until the commit; None if it is not running, or
        (PostgreSQL) another runner is pacing it right now."""
        lock = " FOR UPDATE SKIP LOCKED" if self.dialect.name == "postgresql" else ""
        r = self._c.execute(
            f"SELECT {_COLUMNS} FROM backfills WHERE id = ? AND status = 'running'{lock}",
            (backfill_id,),
        ).fetchone()
        return None if r is None else _row(r)

    def backfill_runs_by_status(self, backfill_id: str) -> dict[str, int]:
        """How many of the backfill's runs are in each status."""
        rows = self._c.execute(
            "SELECT status, count(*) FROM workflow_executions WHERE backfill_id = ?"
            " GROUP BY status",
            (backfill_id,),
        ).fetchall()
        return {status: int(count) for status, count in rows}

    def scheduled_times_taken(self, workflow: str, times: Sequence[float]) -> set[float]:
        """Which of ``times`` already have a run of ``workflow`` scheduled for them."""
        if not times:
            return set()
        marks = ",".join("?" * len(times))
        rows = self._c.execute(
            "SELECT DISTINCT scheduled_for FROM workflow_executions WHERE workflow_name = ?"
            f" AND scheduled_for IN ({marks})",
            (workflow, *times),
        ).fetchall()
        return {float(r[0]) for r in rows}

    def advance_backfill(
        self, backfill_id: str, next_time: float | None, created: int, skipped: int, now: float
    ) -> None:
        """Move the cursor to ``next_time`` (None: every time has its run) and count the
        runs made and the times skipped."""
        self._c.execute(
            "UPDATE backfills SET next_time = ?, created_runs = created_runs + ?,"
            " skipped = skipped + ?, updated_at = ? WHERE id = ?",
            (next_time, created, skipped, now, backfill_id),
        )

    def finish_backfill(self, backfill_id: str, status: str, now: float) -> bool:
        """A running backfill whose runs have all ended: ``completed`` or ``failed``."""
        cur = self._c.execute(
            "UPDATE backfills SET status = ?, finished_at = ?, updated_at = ?"
            " WHERE id = ? AND status = 'running'",
            (status, now, now, backfill_id),
        )
        return bool(cur.rowcount == 1)
