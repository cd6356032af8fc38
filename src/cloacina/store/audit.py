"""Audit log queries (SQLAlchemy Core; backend-neutral). The table lives in the default
tenant's database and is append-only: triggers refuse UPDATE and DELETE, and this module
has no statement that tries either."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, or_, select

from cloacina.store.tables import audit_log


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One row of ``audit_log`` (``id`` is 0 before it is stored)."""

    id: int
    at: float
    actor: str
    key_id: str | None
    tenant: str | None
    action: str
    target: str
    outcome: str
    client: str | None
    request_id: str | None
    detail: str | None


_COLUMNS = tuple(audit_log.c[name] for name in AuditRow.__dataclass_fields__)
_INSERT_SQL = (
    "INSERT INTO audit_log (at, actor, key_id, tenant, action, target, outcome, client,"
    " request_id, detail) VALUES (?,?,?,?,?,?,?,?,?,?)"
)

if TYPE_CHECKING:
    from cloacina.store.base import WriteTx


class AuditWrites:
    """The audit log's part of a write transaction (a mixin of the SQL write transaction:
    it provides the connection). Through the store's own writer, so an audited change costs
    one statement on the connection that already holds the write lock, not a second
    connection contending for it."""

    __slots__ = ()

    _c: Any

    def add_audit(self, row: AuditRow) -> None:
        self._c.execute(
            _INSERT_SQL,
            (
                row.at,
                row.actor,
                row.key_id,
                row.tenant,
                row.action,
                row.target,
                row.outcome,
                row.client,
                row.request_id,
                row.detail,
            ),
        )


class AuditQueries:
    """The ``audit_log`` table, given a SQLAlchemy engine."""

    engine: Engine
    write: Callable[[], AbstractContextManager[WriteTx]]

    def insert_audit(self, row: AuditRow) -> None:
        with self.write() as tx:
            tx.add_audit(row)

    def list_audit(
        self,
        *,
        limit: int,
        since: float | None = None,
        until: float | None = None,
        action: str | None = None,
        action_prefix: str | None = None,
        tenant: str | None = None,
        before: tuple[float, int] | None = None,
        actor: str | None = None,
        ok: bool | None = None,
    ) -> list[AuditRow]:
        """Rows newest first by ``(at, id)``, at most ``limit``: only those at or after
        ``since``, before ``until``, of ``action`` (or whose action starts with
        ``action_prefix``), of ``tenant``, whose actor contains ``actor``, whose outcome is
        ``ok`` (``ok=True``) or an error (``ok=False``), and strictly older than the
        ``before`` cursor."""
        query = select(*_COLUMNS)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        if until is not None:
            query = query.where(audit_log.c.at < until)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if action_prefix is not None:
            query = query.where(audit_log.c.action.startswith(action_prefix, autoescape=True))
        if tenant is not None:
            query = query.where(audit_log.c.tenant == tenant)
        if actor is not None:
            query = query.where(audit_log.c.actor.contains(actor, autoescape=True))
        if ok is not None:
            query = query.where(
                (audit_log.c.outcome == "ok") if ok else (audit_log.c.outcome != "ok")
            )
        if before is not None:
            at, row_id = before
            query = query.where(
                or_(audit_log.c.at < at, and_(audit_log.c.at == at, audit_log.c.id < row_id))
            )
        query = query.order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [AuditRow(**r._mapping) for r in conn.execute(query)]
