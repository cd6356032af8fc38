"""The event feed: every tenant's new events in one cheap read, for the server's event hub,
and the schema revision its readiness check compares (SQLAlchemy Core; backend-neutral)."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from cloacina.store.migrate import HEAD_REVISION, current_revision
from cloacina.store.records import EventRow
from cloacina.store.tables import execution_events

_COLUMNS = (
    execution_events.c.id,
    execution_events.c.execution_id,
    execution_events.c.task_id,
    execution_events.c.event,
    execution_events.c.attempt,
    execution_events.c.detail,
    execution_events.c.created_at,
)


class FeedQueries:
    """Events of every run after a sequence number (a range of the primary key), given a
    SQLAlchemy engine."""

    engine: Engine

    def events_after(self, after_id: int, limit: int = 1000) -> list[EventRow]:
        """Events of any run with ``id > after_id``, oldest first, at most ``limit``."""
        query = (
            select(*_COLUMNS)
            .where(execution_events.c.id > after_id)
            .order_by(execution_events.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [EventRow(*r) for r in rows]

    def last_event_id(self) -> int:
        """The highest event id so far (0 when there is none)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(execution_events.c.id))).scalar()
        return int(value or 0)

    def schema_current(self) -> bool:
        """Whether the database answers and its schema is at this version's revision."""
        return current_revision(self.engine) == HEAD_REVISION
