"""Alerting's SQL: channels, the outbox (alerts waiting to be delivered, claimed like tasks)
and the delivery log.

Alerts are put in the outbox by the transaction that makes the change they report (a run
failing, a deadline passing, a worker lost, a task recovered): :class:`AlertWrites` is part
of every SQL write transaction. One row per enabled channel whose rules and workflow filter
match, at most one per ``(channel, dedupe key)``. When no channel exists the insert finds
nothing to copy and costs a lookup of an empty table (and no round trip on PostgreSQL, where
it rides with the commit).

Every process that executes tasks delivers: it claims due rows (``FOR UPDATE SKIP LOCKED``
on PostgreSQL; SQLite has one writer), which makes them invisible to the others for a lease;
a row whose holder died is claimable again once its lease ran out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from cloacina.store.dialect import Dialect


class OutboxItem(NamedTuple):
    """An alert to put in the outbox of every matching channel."""

    rule: str
    dedupe_key: str
    #: The workflow the alert is about (a channel filtered to another one skips it); None
    #: for alerts about no workflow (a worker lost), which such channels skip too.
    workflow: str | None
    payload: str  # JSON


class LateRun(NamedTuple):
    """A run past its deadline, just marked as alerted."""

    id: str
    workflow_name: str
    workflow_version: str
    package: str
    status: str
    deadline_at: float
    started_at: float | None


class LostWorker(NamedTuple):
    """A worker whose heartbeat stopped, just marked lost."""

    id: str
    host: str
    pid: int
    last_heartbeat: float


@dataclass(frozen=True)
class ChannelRow:
    """A row of ``alert_channels`` (``secret`` is empty unless asked for)."""

    id: str
    name: str
    kind: str
    url: str
    rules: tuple[str, ...]
    workflow: str | None
    enabled: bool
    created_at: float
    secret: str = ""


@dataclass(frozen=True)
class ClaimedAlert:
    """An outbox row this process claimed for delivery, with its channel's address."""

    id: int
    channel_id: str
    channel_name: str
    rule: str
    payload: str
    attempt: int  # this attempt's number (1 for the first)
    url: str
    secret: str


@dataclass(frozen=True)
class DeliveryRow:
    """One attempt to deliver an alert."""

    id: int
    outbox_id: int
    channel_id: str
    channel_name: str
    rule: str
    attempt: int
    at: float
    worker_id: str | None
    status_code: int | None
    error: str | None
    duration: float | None
    #: The alert's state now: pending, sending, delivered or failed.
    alert_status: str


@dataclass(frozen=True)
class OutboxRow:
    """An alert in the outbox."""

    id: int
    channel_id: str
    channel_name: str
    rule: str
    dedupe_key: str
    payload: str
    status: str
    attempts: int
    created_at: float
    next_attempt_at: float
    delivered_at: float | None
    last_error: str | None


ENQUEUE_SQL = (
    "INSERT INTO alert_outbox (channel_id, rule, dedupe_key, payload, status, attempts,"
    " created_at, next_attempt_at)"
    " SELECT id, ?, ?, ?, 'pending', 0, ?, ? FROM alert_channels"
    " WHERE enabled = 1 AND rules LIKE ? AND (workflow IS NULL OR workflow = ?)"
    " ON CONFLICT (channel_id, dedupe_key) DO NOTHING"
)


def _enqueue_params(item: OutboxItem, now: float) -> tuple[Any, ...]:
    # Rules are a JSON list of names: a name in quotes matches only that name.
    pattern = f'%"{item.rule}"%'
    return (item.rule, item.dedupe_key, item.payload, now, now, pattern, item.workflow)


class AlertWrites:
    """Alerting's part of a write transaction (a mixin of the SQL write transaction: it
    provides the connection and the dialect)."""

    __slots__ = ()

    _c: Any
    dialect: Dialect

    def enqueue_alerts(self, items: Sequence[OutboxItem], now: float) -> None:
        """Put each alert in the outbox of every enabled channel that wants it."""
        if not items:
            return
        defer = getattr(self._c, "defer", None)
        if defer is not None:  # PostgreSQL: nobody reads the result, so no round trip
            for item in items:
                defer(ENQUEUE_SQL, _enqueue_params(item, now))
        else:
            self._c.executemany(ENQUEUE_SQL, [_enqueue_params(item, now) for item in items])

    def mark_late_runs(self, now: float, limit: int = 100) -> list[LateRun]:
        """Runs whose deadline passed and was not yet looked at: marked (so that one worker
        alone reports each) and returned if they were still unfinished, or finished after
        their deadline. Runs that finished in time are only marked."""
        rows = self._c.execute(
            "UPDATE workflow_executions SET deadline_alerted = CASE"
            " WHEN status IN ('running', 'paused') OR finished_at > deadline_at THEN 1"
            " ELSE 2 END"
            " WHERE id IN (SELECT id FROM workflow_executions"
            " WHERE deadline_alerted = 0 AND deadline_at < ?"
            # In id order, as every writer locks runs (see WriteTx.lock_runs).
            f" ORDER BY id LIMIT ?{self.dialect.lock_rows})"
            " RETURNING id, workflow_name, workflow_version, package, status, deadline_at,"
            " started_at, deadline_alerted",
            (now, limit),
        ).fetchall()
        return [LateRun(*r[:7]) for r in rows if r[7] == 1]

    def mark_lost_workers(self, max_age: float, except_worker: str) -> list[LostWorker]:
        """Running workers whose heartbeat is more than ``max_age`` seconds old (by the
        database's clock), marked ``lost``: each is reported once, by whoever marks it."""
        rows = self._c.execute(
            "UPDATE workers SET status = 'lost' WHERE status = 'running'"
            f" AND last_heartbeat < {self.dialect.now} - ? AND id <> ?"
            " RETURNING id, host, pid, last_heartbeat",
            (max_age, except_worker),
        ).fetchall()
        return [LostWorker(*r) for r in rows]


def _channel(row: Sequence[Any], secret: str = "") -> ChannelRow:
    rid, name, kind, url, rules, workflow, enabled, created_at = row[:8]
    return ChannelRow(
        id=rid,
        name=name,
        kind=kind,
        url=url,
        rules=tuple(json.loads(rules or "[]")),
        workflow=workflow,
        enabled=bool(enabled),
        created_at=float(created_at),
        secret=secret,
    )


_CHANNEL_COLS = "id, name, kind, url, rules, workflow, enabled, created_at"


class AlertQueries:
    """Channels, claiming and recording deliveries, and the reads of the alert timers (a
    mixin of the store: it provides the SQLAlchemy engine and the fast reads)."""

    engine: Engine
    _fetchall: Callable[..., list[Any]]
    _fetchone: Callable[..., Any]

    def _is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def _now_sql(self) -> str:
        from cloacina.store.clock import db_now_sql

        return db_now_sql(self.engine.dialect.name)

    # ---- channels ----------------------------------------------------------------------------
    def insert_alert_channel(self, row: ChannelRow) -> bool:
        """Store a channel; False if one of that name exists."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO alert_channels (id, name, kind, url, secret, rules,"
                        " workflow, enabled, created_at) VALUES (:id, :name, :kind, :url,"
                        " :secret, :rules, :workflow, :enabled, :created_at)"
                    ),
                    {
                        "id": row.id,
                        "name": row.name,
                        "kind": row.kind,
                        "url": row.url,
                        "secret": row.secret,
                        "rules": json.dumps(list(row.rules)),
                        "workflow": row.workflow,
                        "enabled": int(row.enabled),
                        "created_at": row.created_at,
                    },
                )
        except IntegrityError:
            return False
        return True

    def list_alert_channels(self) -> list[ChannelRow]:
        """Every channel, by name, without its secret."""
        rows = self._fetchall(f"SELECT {_CHANNEL_COLS} FROM alert_channels ORDER BY name")
        return [_channel(r) for r in rows]

    def find_alert_channel(
        self, id_or_name: str, *, with_secret: bool = False
    ) -> ChannelRow | None:
        """The channel with this id or name (its secret only ``with_secret``)."""
        row = self._fetchone(
            f"SELECT {_CHANNEL_COLS}, secret FROM alert_channels WHERE id = ? OR name = ?"
            " ORDER BY CASE WHEN id = ? THEN 0 ELSE 1 END LIMIT 1",
            (id_or_name, id_or_name, id_or_name),
        )
        if row is None:
            return None
        return _channel(row, row[8] if with_secret else "")

    def delete_alert_channel(self, channel_id: str) -> bool:
        """Remove a channel with its outbox and delivery log; False if it was gone."""
        with self.engine.begin() as conn:
            # Explicitly, not only by the foreign keys' cascade (SQLite enforces those only
            # on connections that turned them on).
            outbox = "SELECT id FROM alert_outbox WHERE channel_id = :id"
            params = {"id": channel_id}
            conn.execute(
                text(f"DELETE FROM alert_deliveries WHERE outbox_id IN ({outbox})"), params
            )
            conn.execute(text("DELETE FROM alert_outbox WHERE channel_id = :id"), params)
            result = conn.execute(text("DELETE FROM alert_channels WHERE id = :id"), params)
        return bool(result.rowcount)

    def enqueue_channel_alert(self, channel_id: str, item: OutboxItem, now: float) -> int | None:
        """Put an alert in one channel's outbox (a test alert); its outbox id, or None if the
        channel is gone or already holds that dedupe key."""
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "INSERT INTO alert_outbox (channel_id, rule, dedupe_key, payload, status,"
                    " attempts, created_at, next_attempt_at)"
                    " SELECT id, :rule, :key, :payload, 'pending', 0, :now, :now"
                    " FROM alert_channels WHERE id = :channel"
                    " ON CONFLICT (channel_id, dedupe_key) DO NOTHING RETURNING id"
                ),
                {
                    "rule": item.rule,
                    "key": item.dedupe_key,
                    "payload": item.payload,
                    "now": now,
                    "channel": channel_id,
                },
            ).first()
        return None if row is None else int(row[0])

    # ---- delivering --------------------------------------------------------------------------
    def alerts_due(self, now: float) -> bool:
        """Whether an alert waits to be delivered now (a read, no lock)."""
        row = self._fetchone(
            "SELECT 1 FROM alert_outbox WHERE status IN ('pending', 'sending')"
            " AND next_attempt_at <= ? LIMIT 1",
            (now,),
        )
        return row is not None

    def claim_alerts(
        self,
        worker_id: str,
        now: float,
        lease: float,
        limit: int = 1,
        outbox_id: int | None = None,
    ) -> list[ClaimedAlert]:
        """Claim up to ``limit`` due alerts (or the one with ``outbox_id``, if due) for
        ``lease`` seconds: pending ones, and ones whose holder's lease ran out (it died or
        hung past every timeout). The attempt counter moves at the claim."""
        lock = " FOR UPDATE SKIP LOCKED" if self._is_postgres() else ""
        params: dict[str, Any] = {
            "worker": worker_id,
            "now": now,
            "until": now + lease,
            "limit": limit,
        }
        only = ""
        if outbox_id is not None:
            only = " AND id = :only"
            params["only"] = outbox_id
        with self.engine.begin() as conn:
            claimed = conn.execute(
                text(
                    "UPDATE alert_outbox SET status = 'sending', attempts = attempts + 1,"
                    " claimed_by = :worker, claimed_at = :now, next_attempt_at = :until"
                    " WHERE id IN (SELECT id FROM alert_outbox"
                    " WHERE status IN ('pending', 'sending') AND next_attempt_at <= :now"
                    f"{only} ORDER BY next_attempt_at, id LIMIT :limit{lock})"
                    " RETURNING id, channel_id, rule, payload, attempts"
                ),
                params,
            ).fetchall()
            if not claimed:
                return []
            ids = sorted({r[1] for r in claimed})
            marks = ", ".join(f":c{i}" for i in range(len(ids)))
            channels = {
                r[0]: (r[1], r[2], r[3])
                for r in conn.execute(
                    text(f"SELECT id, name, url, secret FROM alert_channels WHERE id IN ({marks})"),
                    {f"c{i}": cid for i, cid in enumerate(ids)},
                )
            }
        out: list[ClaimedAlert] = []
        for oid, cid, rule, payload, attempts in sorted(claimed, key=lambda r: r[0]):
            if cid in channels:
                name, url, secret = channels[cid]
                out.append(ClaimedAlert(oid, cid, name, rule, payload, attempts, url, secret))
        return out

    def record_alert_attempt(
        self,
        alert: ClaimedAlert,
        worker_id: str,
        *,
        status: str,
        now: float,
        next_attempt_at: float,
        status_code: int | None,
        error: str | None,
        duration: float,
    ) -> bool:
        """Log an attempt and move the alert on (``delivered``, ``failed`` or back to
        ``pending`` until ``next_attempt_at``), if this claim still holds it."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                text(
                    "UPDATE alert_outbox SET status = :status, next_attempt_at = :next,"
                    " delivered_at = :delivered, last_error = :error, claimed_by = NULL,"
                    " claimed_at = NULL"
                    " WHERE id = :id AND claimed_by = :worker AND attempts = :attempt"
                    " AND status = 'sending'"
                ),
                {
                    "status": status,
                    "next": next_attempt_at,
                    "delivered": now if status == "delivered" else None,
                    "error": error,
                    "id": alert.id,
                    "worker": worker_id,
                    "attempt": alert.attempt,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO alert_deliveries (outbox_id, channel_id, attempt, at,"
                    " worker_id, status_code, error, duration)"
                    " SELECT id, channel_id, :attempt, :now, :worker, :code, :error, :duration"
                    " FROM alert_outbox WHERE id = :id"
                ),
                {
                    "attempt": alert.attempt,
                    "now": now,
                    "worker": worker_id,
                    "code": status_code,
                    "error": error,
                    "duration": duration,
                    "id": alert.id,
                },
            )
        return bool(moved.rowcount)

    def list_alert_deliveries(self, limit: int = 50) -> list[DeliveryRow]:
        """The latest delivery attempts, newest first."""
        rows = self._fetchall(
            "SELECT d.id, d.outbox_id, d.channel_id, COALESCE(c.name, ''), o.rule, d.attempt,"
            " d.at, d.worker_id, d.status_code, d.error, d.duration, o.status"
            " FROM alert_deliveries d JOIN alert_outbox o ON o.id = d.outbox_id"
            " LEFT JOIN alert_channels c ON c.id = d.channel_id"
            " ORDER BY d.at DESC, d.id DESC LIMIT ?",
            (limit,),
        )
        return [DeliveryRow(*r) for r in rows]

    def list_alert_outbox(self, limit: int = 50, status: str | None = None) -> list[OutboxRow]:
        """Alerts in the outbox, newest first (of one ``status`` when given)."""
        where = " WHERE o.status = ?" if status else ""
        params: tuple[Any, ...] = (status, limit) if status else (limit,)
        rows = self._fetchall(
            "SELECT o.id, o.channel_id, COALESCE(c.name, ''), o.rule, o.dedupe_key, o.payload,"
            " o.status, o.attempts, o.created_at, o.next_attempt_at, o.delivered_at,"
            " o.last_error FROM alert_outbox o LEFT JOIN alert_channels c"
            f" ON c.id = o.channel_id{where} ORDER BY o.id DESC LIMIT ?",
            params,
        )
        return [OutboxRow(*r) for r in rows]

    # ---- the timers' reads -------------------------------------------------------------------
    def has_late_runs(self, now: float) -> bool:
        """Whether a run's deadline passed and was not yet looked at (a read, no lock)."""
        row = self._fetchone(
            "SELECT 1 FROM workflow_executions WHERE deadline_alerted = 0 AND deadline_at < ?"
            " LIMIT 1",
            (now,),
        )
        return row is not None

    def has_lost_workers(self, max_age: float, except_worker: str) -> bool:
        """Whether a running worker's heartbeat is more than ``max_age`` seconds old by the
        database's clock (a read, no lock)."""
        row = self._fetchone(
            "SELECT 1 FROM workers WHERE status = 'running'"
            f" AND last_heartbeat < {self._now_sql()} - ? AND id <> ? LIMIT 1",
            (max_age, except_worker),
        )
        return row is not None

    def prune_alerts(self, before: float) -> int:
        """Forget delivered and failed alerts (and their attempts) created before ``before``."""
        with self.engine.begin() as conn:
            done = (
                "SELECT id FROM alert_outbox WHERE status IN ('delivered', 'failed')"
                " AND created_at < :before"
            )
            conn.execute(
                text(f"DELETE FROM alert_deliveries WHERE outbox_id IN ({done})"),
                {"before": before},
            )
            result = conn.execute(
                text(
                    "DELETE FROM alert_outbox WHERE status IN ('delivered', 'failed')"
                    " AND created_at < :before"
                ),
                {"before": before},
            )
        return int(result.rowcount or 0)
