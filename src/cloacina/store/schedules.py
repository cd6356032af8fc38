"""Schedules' SQL: cron schedules of workflows and the record of their fires.

A schedule's row says which of its times are left to handle: every time at or before
``anchor_at`` was handled (fired, or passed over by its catch-up policy) or must never fire
(it came before an edit); ``next_fire_at`` is its first time after that, or NULL (paused
for good past its end). Firing happens in a write transaction (:class:`ScheduleWrites`,
part of every SQL write transaction): the schedule's row is locked (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so two workers never work on one schedule at once; SQLite has one
writer), then each due time inserts its ``schedule_fires`` row under the unique key
``(schedule_id, scheduled_for)`` with its run, and the row moves on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from cloacina.store.dialect import Dialect


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One row of ``schedules``."""

    id: str
    name: str
    workflow: str
    cron: str
    timezone: str
    context: str  # JSON object
    catchup: str
    max_catchup: int
    start_at: float | None
    end_at: float | None
    enabled: bool
    source: str
    package: str | None
    anchor_at: float
    next_fire_at: float | None
    last_fire_at: float | None
    revision: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class FireRow:
    """One row of ``schedule_fires``: a scheduled time that fired."""

    schedule_id: str
    scheduled_for: float
    fired_at: float
    execution_id: str | None
    worker_id: str | None


_COLUMNS = tuple(f.name for f in fields(ScheduleRow))
_SELECT = ", ".join(_COLUMNS)
#: Columns a change may set (the rest are set once, or by firing).
_CHANGEABLE = frozenset(
    {
        "name",
        "workflow",
        "cron",
        "timezone",
        "context",
        "catchup",
        "max_catchup",
        "start_at",
        "end_at",
        "enabled",
        "source",
        "package",
        "anchor_at",
        "next_fire_at",
        "last_fire_at",
    }
)


def schedule_row(row: Sequence[Any]) -> ScheduleRow:
    """A :class:`ScheduleRow` from the columns of :data:`_SELECT`, in order."""
    values = dict(zip(_COLUMNS, row, strict=True))
    values["enabled"] = bool(values["enabled"])
    values["max_catchup"] = int(values["max_catchup"])
    values["revision"] = int(values["revision"])
    return ScheduleRow(**values)


def _params(row: ScheduleRow) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in _COLUMNS}
    values["enabled"] = int(row.enabled)
    return values


class ScheduleWrites:
    """Firing's part of a write transaction (a mixin of the SQL write transaction: it
    provides the connection and the dialect)."""

    __slots__ = ()

    _c: Any
    dialect: Dialect

    def lock_schedule(
        self, schedule_id: str, now: float | None
    ) -> tuple[ScheduleRow, float] | None:
        """Lock a schedule's row for the rest of the transaction and read it, with the time
        to judge it by (``now``, or the database's clock when None). None: gone, or another
        transaction holds it (PostgreSQL skips it rather than wait: that one fires it)."""
        clock = "?" if now is not None else self.dialect.now
        lock = " FOR UPDATE SKIP LOCKED" if self.dialect.name == "postgresql" else ""
        params: tuple[Any, ...] = (now, schedule_id) if now is not None else (schedule_id,)
        found = self._c.execute(
            f"SELECT {_SELECT}, {clock} FROM schedules WHERE id = ?{lock}", params
        ).fetchone()
        if found is None:
            return None
        return schedule_row(found[:-1]), float(found[-1])

    def insert_fire(
        self,
        schedule_id: str,
        scheduled_for: float,
        fired_at: float,
        execution_id: str,
        worker_id: str,
    ) -> bool:
        """Record that a scheduled time fires now; False if it already fired (its unique key
        exists: another runner's insert came first, and this one does nothing)."""
        found = self._c.execute(
            "INSERT INTO schedule_fires (schedule_id, scheduled_for, fired_at, execution_id,"
            " worker_id) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (schedule_id, scheduled_for) DO NOTHING RETURNING id",
            (schedule_id, scheduled_for, fired_at, execution_id, worker_id),
        ).fetchone()
        return found is not None

    def advance_schedule(
        self,
        schedule_id: str,
        anchor_at: float,
        next_fire_at: float | None,
        last_fire_at: float | None,
    ) -> None:
        """Every time up to ``anchor_at`` is handled; the next is ``next_fire_at``."""
        self._c.execute(
            "UPDATE schedules SET anchor_at = ?, next_fire_at = ?, last_fire_at = ? WHERE id = ?",
            (anchor_at, next_fire_at, last_fire_at, schedule_id),
        )


class ScheduleQueries:
    """Schedules and their fires (a mixin of the store: it provides the SQLAlchemy engine
    and the fast reads)."""

    engine: Engine
    _fetchall: Callable[..., list[Any]]
    _fetchone: Callable[..., Any]

    def _schedule_now_sql(self) -> str:
        from cloacina.store.clock import db_now_sql

        return db_now_sql(self.engine.dialect.name)

    def insert_schedule(self, row: ScheduleRow) -> bool:
        """Store a schedule; False if one of that name exists."""
        names = ", ".join(_COLUMNS)
        marks = ", ".join(f":{c}" for c in _COLUMNS)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    text(f"INSERT INTO schedules ({names}) VALUES ({marks})"), _params(row)
                )
        except IntegrityError:
            return False
        return True

    def get_schedule(self, schedule_id: str) -> ScheduleRow | None:
        found = self._fetchone(f"SELECT {_SELECT} FROM schedules WHERE id = ?", (schedule_id,))
        return None if found is None else schedule_row(found)

    def find_schedules(self, id_or_name: str, limit: int = 10) -> list[ScheduleRow]:
        """Schedules whose id or name is ``id_or_name`` (an exact match first), else whose
        id starts with it (a short id)."""
        rows = self._fetchall(
            f"SELECT {_SELECT} FROM schedules WHERE id = ? OR name = ? ORDER BY id LIMIT ?",
            (id_or_name, id_or_name, limit),
        )
        if not rows and id_or_name:
            prefix = id_or_name.replace("\\", "").replace("%", "").replace("_", "")
            if prefix == id_or_name:  # an id holds no wildcard characters
                rows = self._fetchall(
                    f"SELECT {_SELECT} FROM schedules WHERE id LIKE ? ORDER BY id LIMIT ?",
                    (f"{prefix}%", limit),
                )
        return [schedule_row(r) for r in rows]

    def list_schedule_rows(
        self,
        *,
        workflow: str | None = None,
        source: str | None = None,
        package: str | None = None,
    ) -> list[ScheduleRow]:
        """Schedules by name (only those of ``workflow``, ``source`` or ``package``)."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("workflow", workflow), ("source", source), ("package", package)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._fetchall(f"SELECT {_SELECT} FROM schedules{clause} ORDER BY name", params)
        return [schedule_row(r) for r in rows]

    def change_schedule(
        self,
        schedule_id: str,
        decide: Callable[[ScheduleRow, float], dict[str, Any] | None],
        now: float | None,
    ) -> ScheduleRow | None:
        """Change a schedule under a lock on its row: ``decide(row, now)`` returns the
        columns to set (None: nothing to change); ``now`` is the time to judge by (None: the
        database's clock). Its revision moves on with every change. Returns the row as it is
        after (None: no such schedule). The decision may raise: nothing is stored then."""
        # (SQLite's transactions here take the write lock at BEGIN.)
        lock = " FOR UPDATE" if self.engine.dialect.name == "postgresql" else ""
        clock = ":now" if now is not None else self._schedule_now_sql()
        with self.engine.begin() as conn:
            found = conn.execute(
                text(f"SELECT {_SELECT}, {clock} FROM schedules WHERE id = :id{lock}"),
                {"id": schedule_id, "now": now},
            ).first()
            if found is None:
                return None
            row = schedule_row(tuple(found)[:-1])
            at = float(found[-1])
            changes = decide(row, at)
            if changes is None:
                return row
            unknown = set(changes) - _CHANGEABLE
            if unknown:
                raise ValueError(f"schedules have no changeable column {sorted(unknown)}")
            values = {**changes}
            if "enabled" in values:
                values["enabled"] = int(bool(values["enabled"]))
            sets = ", ".join(f"{c} = :{c}" for c in values)
            conn.execute(
                text(
                    f"UPDATE schedules SET {sets}, revision = revision + 1, updated_at = :at"
                    " WHERE id = :id"
                ),
                {**values, "at": at, "id": schedule_id},
            )
            after = conn.execute(
                text(f"SELECT {_SELECT} FROM schedules WHERE id = :id"), {"id": schedule_id}
            ).first()
        assert after is not None
        return schedule_row(tuple(after))

    def delete_schedule(self, schedule_id: str) -> bool:
        """Remove a schedule and its fires; False if it was gone. Runs it started stay."""
        with self.engine.begin() as conn:
            conn.execute(
                text("DELETE FROM schedule_fires WHERE schedule_id = :id"), {"id": schedule_id}
            )
            result = conn.execute(text("DELETE FROM schedules WHERE id = :id"), {"id": schedule_id})
        return bool(result.rowcount)

    def schedule_fires(self, schedule_id: str, limit: int = 50) -> list[FireRow]:
        """A schedule's fires, newest scheduled time first."""
        rows = self._fetchall(
            "SELECT schedule_id, scheduled_for, fired_at, execution_id, worker_id"
            " FROM schedule_fires WHERE schedule_id = ? ORDER BY scheduled_for DESC LIMIT ?",
            (schedule_id, limit),
        )
        return [FireRow(r[0], float(r[1]), float(r[2]), r[3], r[4]) for r in rows]

    # ---- the engine's reads ------------------------------------------------------------------
    def schedules_due(self, now: float | None, limit: int = 100) -> list[str]:
        """Ids of enabled schedules whose next time has come by ``now`` (None: by the
        database's clock), the earliest first."""
        clock = "?" if now is not None else self._schedule_now_sql()
        params: tuple[Any, ...] = (now, limit) if now is not None else (limit,)
        rows = self._fetchall(
            "SELECT id FROM schedules WHERE enabled = 1 AND next_fire_at <= "
            f"{clock} ORDER BY next_fire_at, id LIMIT ?",
            params,
        )
        return [r[0] for r in rows]

    def next_schedule_time(self, now: float | None) -> tuple[float | None, float]:
        """The earliest next time of the enabled schedules that is still to come after
        ``now`` (None: the database's clock), and that ``now``: when to look again."""
        clock = "?" if now is not None else self._schedule_now_sql()
        params: tuple[Any, ...] = (now, now) if now is not None else ()
        found = self._fetchone(
            f"SELECT (SELECT min(next_fire_at) FROM schedules WHERE enabled = 1"
            f" AND next_fire_at > {clock}), {clock}",
            params,
        )
        return (None if found[0] is None else float(found[0])), float(found[1])


__all__ = [
    "FireRow",
    "ScheduleQueries",
    "ScheduleRow",
    "ScheduleWrites",
    "schedule_row",
]
