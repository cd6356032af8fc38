"""The PostgreSQL store: any number of workers on any number of machines share one database.

Workers coordinate only through it: ready tasks are claimed in one statement with
``FOR UPDATE SKIP LOCKED``, completions are fenced by claim tokens, and ``NOTIFY`` wakes idle
workers at once (a short jittered poll is the fallback). The schema is managed by the same
Alembic migrations as SQLite, under an advisory lock so that concurrent starters do not race.
Each tenant lives in its own schema: every connection has its ``search_path`` pinned to it
when it is opened, and verified (fail closed).

The hot path uses psycopg 3 directly (through SQLAlchemy's connection pool) with the SQL of
:mod:`cloacina.store.sql`; psycopg prepares statements it sees repeatedly. It runs in
autocommit (a read is one round trip; a write transaction sends its own ``BEGIN``/``COMMIT``),
while SQLAlchemy Core (migrations, packages, workers, pruning) gets every pooled connection in
ordinary transactional mode: each ``engine.begin()`` block is one transaction.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import NullPool

from cloacina.errors import (
    ReadOnlyDatabaseError,
    SchemaError,
    StoreError,
    StoreUnavailableError,
)
from cloacina.store import check_tenant_name, migrate
from cloacina.store.base import WriteTx
from cloacina.store.packages import PACKAGES_STATE_SQL, PackagesState, packages_state_of
from cloacina.store.postgres_tx import PostgresWriteTx, TxConnection, pg_sql
from cloacina.store.sql_common import ClaimTokens
from cloacina.store.sql_reads import SQLStore

log = logging.getLogger("cloacina.store.postgres")


def check_schema_name(name: str) -> str:
    """A tenant's schema name (the same rules as every tenant name)."""
    return check_tenant_name(name)


#: PostgreSQL's longest identifier, and so NOTIFY channel name, in bytes (NAMEDATALEN - 1).
MAX_IDENTIFIER = 63


def channel_names(schema: str) -> tuple[str, str]:
    """The NOTIFY channels of a schema: work became ready, a run ended.

    ``cloacina_<schema>`` and ``cloacina_<schema>_done`` where they fit in PostgreSQL's 63
    bytes; for longer tenant names, a prefix of the name and a hash of all of it (the ``.``
    cannot occur in a tenant name, so these never collide with the readable forms).
    """
    ready, done = f"cloacina_{schema}", f"cloacina_{schema}_done"
    if len(done.encode()) <= MAX_IDENTIFIER:
        return ready, done
    digest = hashlib.sha256(schema.encode()).hexdigest()[:16]
    ready = f"cloacina_{schema[:28]}.{digest}"
    return ready, f"{ready}_done"


class _PgConn:
    """A psycopg connection that takes the stores' qmark SQL (for reads)."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self.raw.cursor()
        cur.execute(pg_sql(sql), params)
        return cur


def _sqlalchemy_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(
            f"invalid PostgreSQL URL {url!r}: {exc}; expected postgresql://user@host:5432/db"
        ) from exc
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(f"not a PostgreSQL URL: {url!r}")
    return parsed.set(drivername="postgresql+psycopg")


def _describe(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


#: Lines libpq adds to its messages as advice; ours follows the message instead.
_LIBPQ_ADVICE = ("Is the server running", "HINT:")


def driver_text(exc: BaseException) -> str:
    """The driver's message for ``exc`` on one line, without libpq's advice lines and final
    punctuation, so that a sentence of ours can follow it."""
    text = str(getattr(exc, "orig", None) or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith(_LIBPQ_ADVICE)] or lines
    return "; ".join(kept).rstrip(" .?") or type(exc).__name__


def connection_error(doing: str, url: URL, exc: BaseException) -> StoreUnavailableError:
    """The error for a failed ``doing`` (``open``, ``write to``...) on the database at ``url``:
    when the connection itself failed, that the database could not be reached and how to
    check it."""
    import psycopg

    where = _describe(url)
    detail = driver_text(exc)
    if not isinstance(getattr(exc, "orig", None) or exc, psycopg.OperationalError):
        return StoreUnavailableError(f"cannot {doing} the PostgreSQL database at {where}: {detail}")
    host, port = url.host or "localhost", url.port or 5432
    return StoreUnavailableError(
        f"cannot {doing} the PostgreSQL database at {where}: it could not be reached "
        f"({detail}). Check that the server is running and accepts connections "
        f"(pg_isready -h {host} -p {port}), and that the URL's host, port, database, user and "
        "password are right"
    )


class PostgresStore(SQLStore):
    """A PostgreSQL database (one schema per tenant), shared by any number of workers."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        create_schema: bool = True,
        pool_size: int = 10,
        max_overflow: int = 20,
        pool_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        read_only: bool = False,
    ) -> None:
        """``read_only=True`` creates and migrates nothing (no CREATE rights needed): the
        schema revision is checked instead, and the server refuses writes on its sessions."""
        try:
            import psycopg  # noqa: F401  (the driver SQLAlchemy will use)
        except ImportError as exc:
            raise StoreError(
                "PostgreSQL needs the psycopg driver: pip install 'cloacina[postgres]'"
            ) from exc
        self.url = url
        self.schema = check_schema_name(schema)
        self.channel, self.done_channel = channel_names(self.schema)
        self._sa_url = _sqlalchemy_url(url)
        self._where = _describe(self._sa_url)
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._closed = False
        self._tokens = ClaimTokens(f"{os.getpid():x}.{id(self):x}.")
        self._listeners: list[threading.Event] = []
        self._listening = 0  # listener connections established now
        self._listening_lock = threading.Lock()
        self.read_only = read_only
        if create_schema and not read_only and self.schema != "public":
            self._create_schema()
        options = f"-c search_path={self.schema}"
        if read_only:
            options += " -c default_transaction_read_only=on"
        self.engine = create_engine(
            self._sa_url,
            # The most recently used connection first: its prepared statements are warm.
            pool_use_lifo=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            connect_args={
                "connect_timeout": max(1, int(connect_timeout)),
                "options": options,
                "application_name": "cloacina",
            },
        )
        event.listen(self.engine, "connect", self._verify_search_path)
        event.listen(self.engine, "checkout", _transactional)
        try:
            if read_only:
                self._check_schema()
            else:
                migrate.upgrade(self.engine, self._migration_lock())
        except DBAPIError as exc:
            self.engine.dispose()
            raise self._error("open", exc) from exc
        except BaseException:
            self.engine.dispose()
            raise

    def _check_schema(self) -> None:
        """A read-only store migrates nothing: refuse a missing schema or another revision."""
        shown = make_url(self.url).render_as_string(hide_password=True)  # as the user wrote it
        hint = f"cloacina db upgrade --db {shown}"
        if self.schema != "public":
            hint += f" --tenant {self.schema}"
        where = f"schema {self.schema!r} of {self._where}"
        try:
            migrate.require_head(self.engine, where, hint)
        except StoreError as exc:
            if isinstance(exc, SchemaError):
                raise
            # The schema does not exist: connections refuse to run without it (fail closed).
            raise SchemaError(
                f"no Cloacina database in {where} (no such schema); run a workflow or start "
                f"a worker there first, or create it with: {hint}"
            ) from None

    # ---- connections -------------------------------------------------------------------------
    def _error(self, doing: str, exc: BaseException) -> StoreError:
        return connection_error(doing, self._sa_url, exc)

    def _create_schema(self) -> None:
        bootstrap = create_engine(
            self._sa_url,
            poolclass=NullPool,
            connect_args={"connect_timeout": max(1, int(self._connect_timeout))},
        )
        try:
            with bootstrap.begin() as conn:
                # Concurrent openers of a new tenant would race in CREATE SCHEMA IF NOT EXISTS
                # (one fails on a unique violation): they queue here instead, and the next
                # sees the schema once the first commits.
                key = f"cloacina-schema:{self.schema}"
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        except DBAPIError as exc:
            raise self._error("open", exc) from exc
        finally:
            bootstrap.dispose()

    def _verify_search_path(self, dbapi_conn: Any, _record: Any) -> None:
        # Fail closed: a connection that would not see this tenant's schema is never used.
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT current_schema()")
            row = cur.fetchone()
        dbapi_conn.rollback()
        if row is None or row[0] != self.schema:
            raise StoreError(
                f"connection search_path is not pinned to schema {self.schema!r} "
                f"(current schema: {row[0] if row else None!r}); refusing to use it"
            )

    def _migration_lock(self) -> AbstractContextManager[Connection]:
        """Serialise migrations of this schema across processes (a session advisory lock),
        on a connection the migration then runs on: a pool of one connection is enough."""

        @contextmanager
        def hold() -> Iterator[Connection]:
            key = f"cloacina-migrate:{self.schema}"
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": key})
                conn.commit()
                try:
                    yield conn
                finally:
                    try:
                        if conn.in_transaction():
                            conn.rollback()
                        conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
                        conn.commit()
                    except Exception:
                        # The lock must not stay held by a pooled connection: closing it ends
                        # the session, and with it the lock.
                        conn.invalidate()
                        raise

        return hold()

    def _raw(self) -> Any:
        """A pooled connection for the hot path, in autocommit: a read is one round trip, and
        a write transaction sends its own ``BEGIN``/``COMMIT`` (see :class:`TxConnection`)."""
        if self._closed:
            raise StoreError("the store is closed")
        try:
            raw: Any = self.engine.raw_connection()
        except DBAPIError as exc:
            raise self._error("connect to", exc) from exc
        except PoolTimeoutError as exc:
            raise StoreUnavailableError(
                f"no free connection to the PostgreSQL database at {self._where}: every pooled "
                f"connection stayed busy for {self._pool_timeout:g}s; raise pool_size / "
                "max_overflow (cloacina worker --pool-size / --max-overflow) or pool_timeout"
            ) from exc
        raw.driver_connection.autocommit = True  # idle (see _transactional): no round trip
        return raw

    def _drop_dead(self, raw: Any) -> None:
        """A connection died (server restart, failover, pg_terminate_backend): its idle
        siblings in the pool are most likely dead too, so start a fresh pool."""
        raw.invalidate()
        self.engine.dispose(close=False)

    @staticmethod
    def _after_error(raw: Any, exc: BaseException) -> None:
        import psycopg

        if isinstance(exc, psycopg.OperationalError) or raw.driver_connection.closed:
            raw.invalidate()  # a broken connection must not go back into the pool
            return
        try:
            raw.rollback()
        except Exception:
            raw.invalidate()

    def _reconnect(self, dead: Any) -> Any:
        """A transaction's first statement found its pooled connection dead: a fresh one."""
        self._drop_dead(dead)
        dead.close()
        return self._raw()

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        import psycopg

        if self.read_only:
            raise ReadOnlyDatabaseError(
                f"this store was opened read-only on {self._where}; open it without read_only "
                "to write"
            )
        conn = TxConnection(self._raw(), self._reconnect)
        try:
            yield PostgresWriteTx(conn, self._tokens, self.channel, self.done_channel)
            conn.commit()
        except psycopg.OperationalError as exc:
            self._drop_dead(conn.raw)
            raise self._error("write to", exc) from exc
        except BaseException as exc:
            self._after_error(conn.raw, exc)
            raise
        finally:
            conn.raw.close()

    def _read(self, sql: str, params: Sequence[Any], one: bool) -> Any:
        import psycopg

        for attempt in (1, 2):
            raw = self._raw()
            try:
                cur = _PgConn(raw.driver_connection).execute(sql, params)
                return cur.fetchone() if one else list(cur.fetchall())
            except psycopg.OperationalError as exc:
                self._drop_dead(raw)
                if attempt == 2:
                    raise self._error("read from", exc) from exc
            except BaseException as exc:
                self._after_error(raw, exc)
                raise
            finally:
                raw.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self._read(sql, params, one=False))

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._read(sql, params, one=True)

    def packages_state(self, tenant: str) -> PackagesState:
        # Asked on every poll: one round trip, not a transaction of three.
        return packages_state_of(self._fetchone(PACKAGES_STATE_SQL, (tenant, tenant, tenant)))

    # ---- wake-ups ----------------------------------------------------------------------------
    def listen(
        self,
        on_ready: Callable[[], object],
        on_finished: Callable[[str], object] | None = None,
    ) -> Callable[[], None]:
        """Call ``on_ready`` when work becomes ready and ``on_finished(execution_id)`` when a
        run ends (NOTIFY on this schema's channels), from a dedicated connection that
        reconnects with a jittered back-off when it is lost."""
        stop = threading.Event()
        self._listeners.append(stop)
        conninfo = self._sa_url.set(drivername="postgresql").render_as_string(hide_password=False)
        thread = threading.Thread(
            target=self._listen_loop,
            args=(conninfo, on_ready, on_finished, stop),
            name="cloacina-listen",
            daemon=True,
        )
        thread.start()
        return stop.set

    def _listen_loop(
        self,
        conninfo: str,
        on_ready: Callable[[], object],
        on_finished: Callable[[str], object] | None,
        stop: threading.Event,
    ) -> None:
        import psycopg

        delay = 0.1
        while not stop.is_set():
            try:
                with psycopg.connect(
                    conninfo, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
                ) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    if on_finished is not None:
                        conn.execute(f'LISTEN "{self.done_channel}"')
                    on_ready()  # we may have missed notifications while (re)connecting
                    delay = 0.1
                    self._count_listening(+1)
                    try:
                        while not stop.is_set():
                            for note in conn.notifies(timeout=0.5):
                                if note.channel == self.done_channel and on_finished is not None:
                                    on_finished(note.payload)
                                else:
                                    on_ready()
                    finally:
                        self._count_listening(-1)
            except Exception as exc:
                if stop.is_set():
                    return
                log.warning("listener connection lost (%s); reconnecting in %.1fs", exc, delay)
                stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 5.0)

    def _count_listening(self, delta: int) -> None:
        with self._listening_lock:
            self._listening += delta

    @property
    def notifying(self) -> bool:
        return self._listening > 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stop in self._listeners:
            stop.set()
        self.engine.dispose()


def _transactional(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """On checkout: an idle connection in ordinary transactional mode, whatever state its
    last user left it in (SQLAlchemy Core relies on it; the hot path turns autocommit on).
    Setting ``autocommit`` costs no round trip, but needs an idle connection."""
    from psycopg.pq import TransactionStatus

    try:
        if dbapi_conn.info.transaction_status != TransactionStatus.IDLE:
            dbapi_conn.rollback()
        if dbapi_conn.autocommit:
            dbapi_conn.autocommit = False
    except Exception as exc:
        # The pool drops this connection and hands out another.
        raise DisconnectionError(f"pooled connection unusable: {exc}") from exc


def drop_schema(url: str, schema: str) -> None:
    """Remove a tenant's schema and everything in it."""
    check_schema_name(schema)
    if schema == "public":
        raise StoreError("refusing to drop the public schema")
    engine = create_engine(_sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


def list_schemas(url: str) -> list[str]:
    """Schemas that hold a Cloacina database (an ``alembic_version`` and our tables)."""
    parsed = _sqlalchemy_url(url)
    engine = create_engine(parsed, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_schema FROM information_schema.tables"
                    " WHERE table_name = 'workflow_executions' ORDER BY table_schema"
                )
            ).fetchall()
        return [r[0] for r in rows]
    except DBAPIError as exc:
        raise connection_error("open", parsed, exc) from exc
    finally:
        engine.dispose()
