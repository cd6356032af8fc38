"""The SQLite store: one file in WAL mode, shared by any number of runners on one machine.

The schema is managed with SQLAlchemy tables and Alembic. The hot path (claims, completions)
uses the stdlib ``sqlite3`` driver with prepared SQL text: building a SQLAlchemy statement
costs more than running it (see BENCHMARKS.md), and a task's whole completion is a handful
of statements in one transaction.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from sqlalchemy import create_engine, event
from sqlalchemy.pool import NullPool

from cloacina.errors import (
    ReadOnlyDatabaseError,
    SchemaError,
    StoreError,
    StoreUnavailableError,
)
from cloacina.store import check_tenant_name, migrate
from cloacina.store.base import WriteTx
from cloacina.store.sql import SQLWriteTx
from cloacina.store.sql_reads import SQLStore

log = logging.getLogger("cloacina.store.sqlite")


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


def _begin_deferred(conn: Any) -> None:
    """A read-only store's SQLAlchemy transactions: plain BEGIN (a snapshot, no lock)."""
    conn.exec_driver_sql("BEGIN")


def _readonly_message(path: str, what: str) -> str:
    return (
        f"cannot write the database {path!r}: {what}. Make it writable to run workflows or "
        "workers on it (SQLite also writes its -wal and -shm files beside the database); "
        "read commands (cloacina executions list|show, workflows list, workers list) work on "
        "it as it is"
    )


class SQLiteStore(SQLStore):
    """A SQLite database file in WAL mode with a busy timeout, migrated on open.

    ``read_only=True`` opens an existing database to read: no migration (the schema revision
    is checked instead, :class:`SchemaError`), no write connection, and read-only connections
    (``mode=ro``), so a file or directory this process cannot write is fine.
    """

    def __init__(self, url: str, *, busy_timeout: float = 30.0, read_only: bool = False) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.read_only = read_only
        parent = Path(self.path).resolve().parent
        if not parent.is_dir():
            raise StoreError(
                f"cannot open database {self.path!r}: directory {str(parent)!r} does not "
                "exist. Create it first or choose another path."
            )
        if os.path.isdir(self.path):
            raise StoreError(f"cannot open database {self.path!r}: it is a directory")
        if read_only and not os.path.exists(self.path):
            raise SchemaError(
                f"no Cloacina database at {self.path!r}: the file does not exist. Run a "
                "workflow there first, or point the URL at an existing database"
            )
        if read_only and not os.access(self.path, os.R_OK):
            raise StoreError(f"cannot read the database {self.path!r}: permission denied")
        if not read_only:
            if not os.access(parent, os.W_OK):
                raise ReadOnlyDatabaseError(
                    _readonly_message(self.path, f"its directory {str(parent)!r} is read-only")
                )
            if os.path.exists(self.path) and not os.access(self.path, os.W_OK):
                raise ReadOnlyDatabaseError(_readonly_message(self.path, "the file is read-only"))
        self._busy_timeout = busy_timeout
        self._closed = False
        self._tokens = (f"{os.getpid():x}-{id(self):x}-{n}" for n in itertools.count(1))
        self._write_conn: sqlite3.Connection | None = None
        self._ro_uri = ""
        try:
            if read_only:
                self._ro_uri = self._readonly_uri()
                # The creator opens the same read-only URI as the hot path's readers.
                self.engine = create_engine("sqlite://", poolclass=NullPool, creator=self._connect)
                event.listen(self.engine, "begin", _begin_deferred)
                self._check_schema()
            else:
                self.engine = create_engine(
                    f"sqlite:///{self.path}",
                    poolclass=NullPool,
                    connect_args={"timeout": busy_timeout},
                )
                event.listen(self.engine, "connect", self._on_connect)
                event.listen(self.engine, "begin", _begin_immediate)
                migrate.upgrade(self.engine, migrate.file_lock(self.path))
                self._write_conn = self._connect()
        except (sqlite3.DatabaseError, sqlalchemy.exc.DBAPIError) as exc:
            detail = getattr(exc, "orig", None) or exc
            if "readonly" in str(detail) or "read-only" in str(detail):
                raise ReadOnlyDatabaseError(_readonly_message(self.path, str(detail))) from exc
            raise StoreError(
                f"cannot open database {self.path!r}: {detail}. Is it a SQLite database file?"
            ) from exc
        except PermissionError as exc:  # the migration's lock file, opened for writing
            raise ReadOnlyDatabaseError(_readonly_message(self.path, str(exc))) from exc
        except OSError as exc:
            raise StoreError(f"cannot open database {self.path!r}: {exc}") from exc
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._read_lock = threading.Lock()

    # -- opening to read ---------------------------------------------------------------------
    def _readonly_uri(self) -> str:
        """The URI of read-only connections: ``mode=ro``; where that cannot open (a WAL
        database in a directory we cannot write, when no writer has it open: SQLite must
        create the -shm file), ``immutable=1``, which needs no -shm but reads the file as a
        snapshot: with no -wal file every commit is in the database file, but a writer that
        starts later (one allowed to write there) is not seen, and must not checkpoint while
        this reads."""
        base = "file:" + urllib.parse.quote(str(Path(self.path).resolve()))
        uri = f"{base}?mode=ro"
        try:
            probe = sqlite3.connect(uri, uri=True, timeout=self._busy_timeout)
            try:
                probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                probe.close()
            return uri
        except sqlite3.OperationalError as exc:
            parent = str(Path(self.path).resolve().parent)
            # SQLITE_CANTOPEN or SQLITE_READONLY_DIRECTORY, depending on who is refused.
            if os.access(parent, os.W_OK):
                raise
            if os.path.exists(self.path + "-wal"):
                raise ReadOnlyDatabaseError(
                    f"cannot read the database {self.path!r}: it is in WAL mode with a -wal "
                    f"file but no -shm file, and its directory {parent!r} is read-only. "
                    "Make the directory writable (or open the database once with a writer "
                    "to checkpoint it)"
                ) from exc
            log.info("reading %s as an immutable snapshot (read-only directory)", self.path)
            return f"{base}?mode=ro&immutable=1"

    def _check_schema(self) -> None:
        """A read-only store migrates nothing: refuse an empty file or another schema."""
        conn = self._connect()
        try:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            conn.close()
        hint = f"cloacina db upgrade --db {self.url}"
        if not tables:
            raise SchemaError(
                f"no Cloacina database at {self.path!r}: the file is empty. Run a workflow "
                f"there first, or create the schema with: {hint}"
            )
        migrate.require_head(self.engine, repr(self.path), hint)

    # -- connections -------------------------------------------------------------------------
    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        if self.read_only:
            return  # the journal mode is the writers' to set; reads need no foreign keys
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
        if self.read_only:
            conn = sqlite3.connect(
                self._ro_uri,
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout,
            )
        else:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout,
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
        if self.read_only:
            raise ReadOnlyDatabaseError(
                f"this store was opened read-only on {self.path!r}; open it without "
                "read_only to write"
            )
        with self._write_lock:
            conn = self._write_conn
            if conn is None:  # the last write left its connection unusable
                conn = self._write_conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # locked past busy_timeout, I/O error
                raise self._unavailable(exc) from exc
            try:
                yield SQLWriteTx(conn, self._tokens)
                conn.execute("COMMIT")
            except BaseException as exc:
                # A COMMIT can fail too (a deferred constraint, a full disk, an I/O error)
                # and leave the transaction open, like a failed body: every later write would
                # fail ("cannot start a transaction within a transaction").
                self._end_failed_write(conn)
                if isinstance(exc, sqlite3.OperationalError):
                    raise self._unavailable(exc) from exc
                raise

    def _unavailable(self, exc: sqlite3.OperationalError) -> StoreUnavailableError:
        """The database is there but cannot be used right now (another process holds its
        lock past ``busy_timeout``, a disk or I/O error): a caller may retry. Data the
        database refuses (a constraint) stays an IntegrityError: retrying would not help."""
        return StoreUnavailableError(
            f"cannot write to the SQLite database {self.path!r} right now: {exc} "
            "(another process may hold its lock for longer than busy_timeout, or the disk "
            "failed)"
        )

    def _end_failed_write(self, conn: sqlite3.Connection) -> None:
        """Roll back what a failed write left open, never hiding the error that failed it: a
        connection that cannot even roll back is closed (which rolls back) and replaced."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return
        except sqlite3.Error as exc:
            log.warning(
                "could not roll back a failed write on %s (%s); reconnecting", self.path, exc
            )
        self._write_conn = None
        try:
            conn.close()
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock:
            if self._write_conn is not None:
                self._write_conn.close()
        with self._read_lock:
            for conn in self._read_conns:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:  # owned by another thread
                    pass
            self._read_conns.clear()
        self.engine.dispose()
