"""The database's clock, as SQL: heartbeats and claims are stamped with it and staleness is
judged by it, so that workers on machines whose clocks differ agree on who is alive."""

from __future__ import annotations


def db_now_sql(dialect: str) -> str:
    """An SQL expression for the database's current time in seconds since the epoch."""
    if dialect == "postgresql":
        return "EXTRACT(EPOCH FROM clock_timestamp())::float8"
    return "((julianday('now') - 2440587.5) * 86400.0)"  # SQLite: a Julian day, in seconds
