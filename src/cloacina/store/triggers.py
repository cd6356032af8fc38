"""Triggers' SQL: the ``triggers`` table (one row per poll function, keyed by name) and the
checks of the transaction that starts a triggered run.

One runner polls a due trigger: :meth:`TriggerQueries.claim_trigger_poll` moves its
``next_poll_at`` on by the interval only while it is still due, so of several runners that
saw it due, one alone changes the row. A run is started by a write transaction that first
locks the trigger's row (PostgreSQL; SQLite has one writer) and looks for an unfinished run
of the same trigger and context key: two runners that polled the same context one after the
other never both start a run for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from cloacina.store.dialect import Dialect, dialect_named

#: The statuses of a run that is still active (its context starts no other run).
ACTIVE_STATUSES = ("pending", "running", "paused")


@dataclass(frozen=True, slots=True)
class TriggerRow:
    """A row of ``triggers``."""

    name: str
    workflow: str
    poll_interval: float
    allow_concurrent: bool
    enabled: bool
    source: str
    package: str | None
    next_poll_at: float
    last_polled_at: float | None
    last_fired_at: float | None
    failures: int
    last_error: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class TriggerDecl:
    """What a runner knows of a trigger it declares (the row's definition columns)."""

    name: str
    workflow: str
    poll_interval: float
    allow_concurrent: bool
    source: str = "declared"
    package: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerClaim:
    """A poll this runner claimed: when (the poll's time) and the failures so far."""

    name: str
    polled_at: float
    failures: int


_COLUMNS = (
    "name, workflow, poll_interval, allow_concurrent, enabled, source, package, next_poll_at,"
    " last_polled_at, last_fired_at, failures, last_error, created_at, updated_at"
)


def _row(r: Sequence[Any]) -> TriggerRow:
    return TriggerRow(
        name=r[0],
        workflow=r[1],
        poll_interval=float(r[2]),
        allow_concurrent=bool(r[3]),
        enabled=bool(r[4]),
        source=r[5],
        package=r[6],
        next_poll_at=float(r[7]),
        last_polled_at=r[8],
        last_fired_at=r[9],
        failures=int(r[10]),
        last_error=r[11],
        created_at=float(r[12]),
        updated_at=float(r[13]),
    )


def _names(names: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """``IN (:n0, :n1, ...)`` and its parameters (never empty: callers check)."""
    marks = ", ".join(f":n{i}" for i in range(len(names)))
    return f"({marks})", {f"n{i}": n for i, n in enumerate(names)}


class TriggerQueries:
    """The ``triggers`` table, given a SQLAlchemy engine."""

    engine: Engine

    def _trigger_now(self, now: float | None) -> str:
        """``now`` as SQL: the parameter, or (None) the database's clock."""
        return ":now" if now is not None else dialect_named(self.engine.dialect.name).now

    def upsert_triggers(self, decls: Sequence[TriggerDecl], now: float) -> None:
        """Record these triggers (a new one is due at once); one already recorded keeps its
        state (enabled, failures, next poll: brought forward to ``now`` plus a new, shorter
        interval) and takes the new definition. Never a second row: the name is the key."""
        if not decls:
            return
        with self.engine.begin() as conn:
            for d in sorted(decls, key=lambda d: d.name):  # one lock order for every runner
                conn.execute(
                    text(
                        "INSERT INTO triggers (name, workflow, poll_interval, allow_concurrent,"
                        " enabled, source, package, next_poll_at, failures, created_at,"
                        " updated_at) VALUES (:name, :workflow, :interval, :concurrent, 1,"
                        " :source, :package, :now, 0, :now, :now)"
                        " ON CONFLICT (name) DO UPDATE SET workflow = excluded.workflow,"
                        " poll_interval = excluded.poll_interval,"
                        " allow_concurrent = excluded.allow_concurrent,"
                        " source = excluded.source, package = excluded.package,"
                        # A shorter interval applies from now, not after the old one's wait.
                        " next_poll_at = CASE WHEN triggers.next_poll_at >"
                        " excluded.next_poll_at + excluded.poll_interval"
                        " THEN excluded.next_poll_at + excluded.poll_interval"
                        " ELSE triggers.next_poll_at END,"
                        " updated_at = excluded.updated_at"
                        " WHERE triggers.workflow <> excluded.workflow"
                        " OR triggers.poll_interval <> excluded.poll_interval"
                        " OR triggers.allow_concurrent <> excluded.allow_concurrent"
                        " OR triggers.source <> excluded.source"
                        " OR COALESCE(triggers.package, '') <> COALESCE(excluded.package, '')"
                    ),
                    {
                        "name": d.name,
                        "workflow": d.workflow,
                        "interval": d.poll_interval,
                        "concurrent": int(d.allow_concurrent),
                        "source": d.source,
                        "package": d.package,
                        "now": now,
                    },
                )

    def delete_package_triggers(self, package: str, keep: Sequence[str] = ()) -> int:
        """Remove the triggers a package declared (except ``keep``): how many went."""
        sql = "DELETE FROM triggers WHERE package = :package"
        params: dict[str, Any] = {"package": package}
        if keep:
            marks, more = _names(keep)
            sql += f" AND name NOT IN {marks}"
            params.update(more)
        with self.engine.begin() as conn:
            return int(conn.execute(text(sql), params).rowcount or 0)

    def list_trigger_rows(self) -> list[TriggerRow]:
        """Every trigger, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT {_COLUMNS} FROM triggers ORDER BY name"))
            return [_row(r) for r in rows]

    def find_trigger_row(self, name: str) -> TriggerRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                text(f"SELECT {_COLUMNS} FROM triggers WHERE name = :name"), {"name": name}
            ).first()
        return None if r is None else _row(r)

    def set_trigger_enabled(self, name: str, enabled: bool, now: float) -> bool:
        """Pause or resume a trigger; False if there is no such trigger. A resumed trigger
        is due at once, with its failures forgotten."""
        if enabled:
            sql = (
                "UPDATE triggers SET enabled = 1, failures = 0, last_error = NULL,"
                " next_poll_at = :now, updated_at = :now WHERE name = :name"
            )
        else:
            sql = "UPDATE triggers SET enabled = 0, updated_at = :now WHERE name = :name"
        with self.engine.begin() as conn:
            return bool(conn.execute(text(sql), {"name": name, "now": now}).rowcount)

    def next_trigger_poll(self, names: Sequence[str]) -> float | None:
        """The earliest ``next_poll_at`` of the enabled triggers among ``names``."""
        if not names:
            return None
        marks, params = _names(names)
        with self.engine.connect() as conn:
            value = conn.execute(
                text(
                    f"SELECT MIN(next_poll_at) FROM triggers WHERE enabled = 1 AND name IN {marks}"
                ),
                params,
            ).scalar()
        return None if value is None else float(value)

    def due_triggers(self, names: Sequence[str], now: float | None) -> list[str]:
        """The enabled triggers among ``names`` whose poll is due at ``now`` (None: by the
        database's clock), soonest first."""
        if not names:
            return []
        marks, params = _names(names)
        if now is not None:
            params["now"] = now
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT name FROM triggers WHERE enabled = 1 AND name IN {marks}"
                    f" AND next_poll_at <= {self._trigger_now(now)} ORDER BY next_poll_at, name"
                ),
                params,
            )
            return [r[0] for r in rows]

    def claim_trigger_poll(
        self, name: str, interval: float, now: float | None
    ) -> TriggerClaim | None:
        """Take this poll of a due trigger: its next poll moves ``interval`` on from ``now``
        (None: the database's clock). None if it was not due (any more) or is paused:
        another runner took it, or it was never due."""
        now_sql = self._trigger_now(now)
        params: dict[str, Any] = {"name": name, "interval": interval}
        if now is not None:
            params["now"] = now
        with self.engine.begin() as conn:
            r = conn.execute(
                text(
                    f"UPDATE triggers SET next_poll_at = {now_sql} + :interval,"
                    f" last_polled_at = {now_sql}"
                    f" WHERE name = :name AND enabled = 1 AND next_poll_at <= {now_sql}"
                    " RETURNING last_polled_at, failures"
                ),
                params,
            ).first()
        return None if r is None else TriggerClaim(name, float(r[0]), int(r[1]))

    def record_trigger_failure(
        self, name: str, failures: int, error: str, next_poll_at: float, now: float
    ) -> None:
        """A poll raised: count it, keep its error, and wait until ``next_poll_at``."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE triggers SET failures = :failures, last_error = :error,"
                    " next_poll_at = :next, updated_at = :now WHERE name = :name"
                ),
                {
                    "name": name,
                    "failures": failures,
                    "error": error,
                    "next": next_poll_at,
                    "now": now,
                },
            )

    def record_trigger_success(self, name: str, now: float) -> None:
        """A poll that had failed before worked: its failures are forgotten."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE triggers SET failures = 0, last_error = NULL, updated_at = :now"
                    " WHERE name = :name AND failures > 0"
                ),
                {"name": name, "now": now},
            )


class TriggerWrites:
    """Triggers' part of a write transaction (a mixin of the SQL write transaction: it
    provides the connection and the dialect): the checks and marks of starting a run."""

    __slots__ = ()

    _c: Any
    dialect: Dialect

    def lock_trigger(self, name: str) -> bool | None:
        """Lock the trigger's row until the commit (so that two runners starting runs for
        it take turns) and return whether it is enabled (None: no such trigger)."""
        row = self._c.execute(
            f"SELECT enabled FROM triggers WHERE name = ?{self.dialect.lock_rows}", (name,)
        ).fetchone()
        return None if row is None else bool(row[0])

    def active_triggered_run(self, name: str, key: str) -> str | None:
        """An unfinished run this trigger started with this context key, if there is one."""
        row = self._c.execute(
            "SELECT id FROM workflow_executions WHERE trigger_name = ? AND trigger_key = ?"
            " AND status IN ('pending', 'running', 'paused') LIMIT 1",
            (name, key),
        ).fetchone()
        return None if row is None else str(row[0])

    def mark_triggered(self, name: str, now: float) -> None:
        """The trigger started a run (its run row names it): its poll worked."""
        sql = (
            "UPDATE triggers SET last_fired_at = ?, failures = 0, last_error = NULL,"
            " updated_at = ? WHERE name = ?"
        )
        defer = getattr(self._c, "defer", None)
        if defer is not None:  # PostgreSQL: nobody reads the result, no round trip
            defer(sql, (now, now, name))
        else:
            self._c.execute(sql, (now, now, name))
