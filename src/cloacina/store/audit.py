"""Audit log queries (SQLAlchemy Core; backend-neutral). The table lives in the default
tenant's database and is append-only: triggers refuse UPDATE and DELETE, and this module
has no statement that tries either."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, and_, insert, or_, select

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


class AuditQueries:
    """The ``audit_log`` table, given a SQLAlchemy engine."""

    engine: Engine

    def insert_audit(self, row: AuditRow) -> None:
        values = {c.name: getattr(row, c.name) for c in _COLUMNS if c.name != "id"}
        with self.engine.begin() as conn:
            conn.execute(insert(audit_log).values(**values))

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
    ) -> list[AuditRow]:
        """Rows newest first by ``(at, id)``, at most ``limit``: only those at or after
        ``since``, before ``until``, of ``action`` (or whose action starts with
        ``action_prefix``), of ``tenant``, and strictly older than the ``before`` cursor."""
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
        if before is not None:
            at, row_id = before
            query = query.where(
                or_(audit_log.c.at < at, and_(audit_log.c.at == at, audit_log.c.id < row_id))
            )
        query = query.order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [AuditRow(**r._mapping) for r in conn.execute(query)]
