"""The database's clock, as SQL: heartbeats and claims are stamped with it and staleness is
judged by it, so that workers on machines whose clocks differ agree on who is alive."""

from __future__ import annotations

from cloacina.store.dialect import dialect_named


def db_now_sql(dialect: str) -> str:
    """An SQL expression for the database's current time in seconds since the epoch."""
    return dialect_named(dialect).now
