"""The SQLite store: one file in WAL mode, shared by any number of runners on one machine.

The schema is managed with SQLAlchemy tables and Alembic. The hot path (claims, completions)
uses the stdlib ``sqlite3`` driver with prepared SQL text: building a SQLAlchemy statement
costs more than running it (see BENCHMARKS.md), and a task's whole completion is a handful
of statements in one transaction.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from sqlalchemy import create_engine, event
from sqlalchemy.pool import NullPool

from cloacina.errors import StoreError
from cloacina.store import check_tenant_name, migrate
from cloacina.store.base import WriteTx
from cloacina.store.sql import SQLStore, SQLWriteTx


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///path`` (or the seed's ``sqlite://path``) URL."""
    rest = url[len("sqlite:") :]
    if rest.startswith("///"):
        path = rest[3:]
    elif rest.startswith("//"):
        path = rest[2:]
    else:
        path = rest
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        raise StoreError(
            "an in-memory SQLite database cannot be shared between the runner's threads; "
            "give a file path, e.g. sqlite:///cloacina.db"
        )
    return path


def tenant_url(url: str, tenant: str) -> str:
    """The SQLite URL of ``tenant``'s database: the file itself for ``public``, else a file of
    its own beside it (``runs.db`` -> ``runs.acme.db``)."""
    if tenant == "public":
        return url
    check_tenant_name(tenant)
    path = Path(sqlite_path(url))
    suffix = path.suffix or ".db"
    return f"sqlite:///{path.with_name(f'{path.stem}.{tenant}{suffix}')}"


def _begin_immediate(conn: Any) -> None:
    """SQLAlchemy transactions on SQLite take the write lock up front (BEGIN IMMEDIATE): a
    transaction that reads and then writes would otherwise fail with SQLITE_BUSY instead of
    waiting, when another connection wrote in between (WAL snapshots cannot be upgraded)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class SQLiteStore(SQLStore):
    """A SQLite database file in WAL mode with a busy timeout, migrated on open."""

    def __init__(self, url: str, *, busy_timeout: float = 30.0) -> None:
        self.url = url
        self.path = sqlite_path(url)
        parent = Path(self.path).resolve().parent
        if not parent.is_dir():
            raise StoreError(
                f"cannot open database {self.path!r}: directory {str(parent)!r} does not "
                "exist. Create it first or choose another path."
            )
        if not os.access(parent, os.W_OK):
            raise StoreError(
                f"cannot open database {self.path!r}: directory {str(parent)!r} is not "
                "writable. Choose a path you can write to."
            )
        if os.path.isdir(self.path):
            raise StoreError(f"cannot open database {self.path!r}: it is a directory")
        self._busy_timeout = busy_timeout
        self._closed = False
        self._tokens = (f"{os.getpid():x}-{id(self):x}-{n}" for n in itertools.count(1))
        self.engine = create_engine(
            f"sqlite:///{self.path}", poolclass=NullPool, connect_args={"timeout": busy_timeout}
        )
        event.listen(self.engine, "connect", self._on_connect)
        event.listen(self.engine, "begin", _begin_immediate)
        try:
            migrate.upgrade(self.engine, migrate.file_lock(self.path))
            self._write_conn = self._connect()
        except (sqlite3.DatabaseError, sqlalchemy.exc.DBAPIError) as exc:
            detail = getattr(exc, "orig", None) or exc
            raise StoreError(
                f"cannot open database {self.path!r}: {detail}. Is it a SQLite database file?"
            ) from exc
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._read_lock = threading.Lock()

    # -- connections -------------------------------------------------------------------------
    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode and str(mode[0]).lower() != "wal":
            raise StoreError(f"could not switch {self.path!r} to WAL mode (got {mode[0]})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")

    def _on_connect(self, dbapi_conn: Any, _record: Any) -> None:
        self._configure(dbapi_conn)
        # SQLAlchemy's transactions below are begun explicitly (see _begin_immediate).
        dbapi_conn.isolation_level = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
        )
        self._configure(conn)
        return conn

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._reader().execute(sql, params).fetchall()

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._reader().execute(sql, params).fetchone()

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._read_lock:
                self._read_conns.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        if self._closed:
            raise StoreError("the store is closed")
        with self._write_lock:
            conn = self._write_conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield SQLWriteTx(conn, self._tokens)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- small transactions ------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock:
            self._write_conn.close()
        with self._read_lock:
            for conn in self._read_conns:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:  # owned by another thread
                    pass
            self._read_conns.clear()
        self.engine.dispose()
