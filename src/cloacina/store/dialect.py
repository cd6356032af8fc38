"""What differs between the SQL backends, in one place.

Statements are written once, in qmark style (``?``), in ``store/sql.py``; a backend-only
statement lives with its backend. Everything else that differs — the database's clock, how a
SELECT locks the rows it read, and the placeholder style the driver takes — is a field of
the backend's :class:`Dialect`, so no statement spells out a dialect by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass


def _same(sql: str) -> str:
    return sql


@functools.lru_cache(maxsize=2048)
def _pyformat(sql: str) -> str:
    """qmark SQL (``?``) as psycopg's ``%s``. Our statements hold no literal ``?`` or ``%``;
    PostgreSQL-only ones pass arrays as ``%b``: binary, which skips quoting each element."""
    return sql.replace("?", "%s")


@dataclass(frozen=True)
class Dialect:
    """The differences of one backend."""

    name: str
    #: The database's current time in seconds since the epoch (heartbeats, staleness).
    now: str
    #: The suffix of a SELECT that locks the rows it read until the commit.
    lock_rows: str
    #: A qmark statement as the driver takes it.
    sql: Callable[[str], str]


SQLITE = Dialect(
    name="sqlite",
    now="((julianday('now') - 2440587.5) * 86400.0)",  # a Julian day, in seconds
    lock_rows="",  # a write transaction (BEGIN IMMEDIATE) holds the whole database already
    sql=_same,
)

POSTGRESQL = Dialect(
    name="postgresql",
    now="EXTRACT(EPOCH FROM clock_timestamp())::float8",
    lock_rows=" FOR NO KEY UPDATE",  # the lock every writer takes on a run (see lock_runs)
    sql=_pyformat,
)


def dialect_named(name: str) -> Dialect:
    """The dialect of a SQLAlchemy dialect name."""
    return POSTGRESQL if name == "postgresql" else SQLITE
