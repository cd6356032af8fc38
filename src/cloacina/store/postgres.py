"""The PostgreSQL store: any number of workers on any number of machines share one database.

Workers coordinate only through it: ready tasks are claimed in one statement with
``FOR UPDATE SKIP LOCKED``, completions are fenced by claim tokens, and ``NOTIFY`` wakes idle
workers at once (a short jittered poll is the fallback). The schema is managed by the same
Alembic migrations as SQLite, under an advisory lock so that concurrent starters do not race.
Each tenant lives in its own schema: every connection has its ``search_path`` pinned to it
when it is opened, and verified (fail closed).

The hot path uses psycopg 3 directly (through SQLAlchemy's connection pool) with the SQL of
:mod:`cloacina.store.sql`; psycopg prepares statements it sees repeatedly.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from cloacina.errors import StoreError
from cloacina.store import check_tenant_name, migrate
from cloacina.store.base import TaskSpec, WriteTx
from cloacina.store.records import Claim, StaleClaim
from cloacina.store.sql import SQLStore, SQLWriteTx, _marks

log = logging.getLogger("cloacina.store.postgres")


def check_schema_name(name: str) -> str:
    """A tenant's schema name (the same rules as every tenant name)."""
    return check_tenant_name(name)


@functools.lru_cache(maxsize=1024)
def _pg(sql: str) -> str:
    """qmark SQL (``?``) as psycopg's ``%s`` (our statements hold no literal ``?`` or ``%``)."""
    return sql.replace("?", "%s")


class _PgConn:
    """A psycopg connection that takes the stores' qmark SQL."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self.raw.cursor()
        cur.execute(_pg(sql), params)
        return cur

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cur = self.raw.cursor()
        cur.executemany(_pg(sql), rows)
        return cur


class PostgresWriteTx(SQLWriteTx):
    """The shared SQL, plus claims with SKIP LOCKED and NOTIFY to wake other workers."""

    __slots__ = ("_channel", "_done_channel", "_notified")

    def __init__(
        self, conn: _PgConn, tokens: Iterator[str], channel: str, done_channel: str
    ) -> None:
        super().__init__(conn, tokens)
        self._channel = channel
        self._done_channel = done_channel
        self._notified = False

    def _wake_others(self) -> None:
        # Delivered at commit; repeated notifications in one transaction are folded into one.
        if not self._notified:
            self._notified = True
            self._c.execute("SELECT pg_notify(?, '')", (self._channel,))

    def create_execution(
        self,
        execution_id: str,
        *,
        tenant: str,
        package: str,
        workflow_name: str,
        workflow_version: str,
        input_json: str,
        tasks: Sequence[TaskSpec],
        now: float,
        package_id: str | None = None,
    ) -> None:
        super().create_execution(
            execution_id,
            tenant=tenant,
            package=package,
            workflow_name=workflow_name,
            workflow_version=workflow_version,
            input_json=input_json,
            tasks=tasks,
            now=now,
            package_id=package_id,
        )
        self._wake_others()

    def finish_run(
        self,
        execution_id: str,
        status: str,
        now: float,
        *,
        final_json: str | None,
        error: str | None,
    ) -> bool:
        done = super().finish_run(execution_id, status, now, final_json=final_json, error=error)
        if done:  # wake whoever waits for this run, in any process
            self._c.execute("SELECT pg_notify(?, ?)", (self._done_channel, execution_id))
        return done

    def complete_task(self, claim: Claim, output_json: str, now: float) -> bool:
        # One round trip instead of two: the fenced status update and the output insert.
        row = self._c.execute(
            "WITH done AS ("
            " UPDATE task_executions SET status='completed', finished_at=?, error=NULL,"
            " error_traceback=NULL, skip_reason=NULL, claim_token=NULL, heartbeat_at=NULL"
            " WHERE id=? AND claim_token=? AND status='running' RETURNING id)"
            " INSERT INTO task_outputs (task_execution_id, execution_id, task_id, context)"
            " SELECT id, ?, ?, ? FROM done"
            " ON CONFLICT (task_execution_id) DO UPDATE SET context=excluded.context"
            " RETURNING task_execution_id",
            (now, claim.row_id, claim.claim_token, claim.execution_id, claim.task_id, output_json),
        ).fetchone()
        return row is not None

    def mark_ready(self, row_ids: Sequence[int]) -> None:
        super().mark_ready(row_ids)
        if row_ids:
            self._wake_others()

    def requeue_stale(self, stale: StaleClaim, older_than: float) -> bool:
        done = super().requeue_stale(stale, older_than)
        if done:
            self._wake_others()
        return done

    def set_run_status(
        self, execution_id: str, status: str, from_statuses: Sequence[str], now: float
    ) -> bool:
        done = super().set_run_status(execution_id, status, from_statuses, now)
        if done and status == "running":
            self._wake_others()
        return done

    def claim_ready(
        self, limit: int, workflow_keys: Sequence[str], claimed_by: str, now: float
    ) -> list[Claim]:
        if limit <= 0 or not workflow_keys:
            return []
        prefix = next(self._tokens)
        rows = self._c.execute(
            "UPDATE task_executions AS t SET status='running', attempt=t.attempt+1,"
            " claim_token=? || '-' || t.id::text, claimed_by=?, heartbeat_at=?, started_at=?,"
            " retry_at=NULL"
            " FROM workflow_executions w"
            " WHERE w.id = t.execution_id AND t.id IN ("
            "  SELECT t2.id FROM task_executions t2"
            "  JOIN workflow_executions w2 ON w2.id = t2.execution_id"
            "  WHERE t2.status='ready' AND (t2.retry_at IS NULL OR t2.retry_at <= ?)"
            "  AND w2.status='running'"
            "  AND w2.workflow_name || ':' || w2.workflow_version"
            f" IN ({_marks(len(workflow_keys))})"
            "  ORDER BY t2.id LIMIT ? FOR UPDATE OF t2 SKIP LOCKED)"
            " RETURNING t.id, t.execution_id, t.task_id, t.attempt, t.recovery_count,"
            " t.claim_token, w.workflow_name, w.workflow_version, t.started_at, t.deps_total,"
            " t.deps_failed, t.deps_skipped",
            (prefix, claimed_by, now, now, now, *workflow_keys, limit),
        ).fetchall()
        return sorted((Claim(*r) for r in rows), key=lambda c: c.row_id)


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
    ) -> None:
        try:
            import psycopg  # noqa: F401  (the driver SQLAlchemy will use)
        except ImportError as exc:
            raise StoreError(
                "PostgreSQL needs the psycopg driver: pip install 'cloacina[postgres]'"
            ) from exc
        self.url = url
        self.schema = check_schema_name(schema)
        self.channel = f"cloacina_{self.schema}"
        self.done_channel = f"cloacina_{self.schema}_done"
        self._sa_url = _sqlalchemy_url(url)
        self._where = _describe(self._sa_url)
        self._connect_timeout = connect_timeout
        self._closed = False
        self._tokens = (f"{os.getpid():x}.{id(self):x}.{n}" for n in itertools.count(1))
        self._listeners: list[threading.Event] = []
        if create_schema and self.schema != "public":
            self._create_schema()
        self.engine = create_engine(
            self._sa_url,
            # The most recently used connection first: its prepared statements are warm.
            pool_use_lifo=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            connect_args={
                "connect_timeout": max(1, int(connect_timeout)),
                "options": f"-c search_path={self.schema}",
                "application_name": "cloacina",
            },
        )
        event.listen(self.engine, "connect", self._verify_search_path)
        try:
            migrate.upgrade(self.engine, self._migration_lock())
        except DBAPIError as exc:
            self.engine.dispose()
            raise self._error("open", exc) from exc
        except BaseException:
            self.engine.dispose()
            raise

    # ---- connections -------------------------------------------------------------------------
    def _error(self, doing: str, exc: BaseException) -> StoreError:
        detail = str(getattr(exc, "orig", None) or exc).strip()
        return StoreError(
            f"cannot {doing} the PostgreSQL database at {self._where}: {detail}. Is the server "
            "running, and are the URL and credentials right?"
        )

    def _create_schema(self) -> None:
        bootstrap = create_engine(
            self._sa_url,
            poolclass=NullPool,
            connect_args={"connect_timeout": max(1, int(self._connect_timeout))},
        )
        try:
            with bootstrap.begin() as conn:
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
        # Reads run in autocommit (one round trip each, no BEGIN/ROLLBACK); writes open an
        # explicit transaction.
        dbapi_conn.autocommit = True
        if row is None or row[0] != self.schema:
            raise StoreError(
                f"connection search_path is not pinned to schema {self.schema!r} "
                f"(current schema: {row[0] if row else None!r}); refusing to use it"
            )

    def _migration_lock(self) -> Any:
        @contextmanager
        def hold() -> Iterator[None]:
            with self.engine.connect() as conn:
                key = f"cloacina-migrate:{self.schema}"
                conn.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": key})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
                    conn.commit()

        return hold()

    def _raw(self) -> Any:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            return self.engine.raw_connection()
        except DBAPIError as exc:
            raise self._error("connect to", exc) from exc

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

    def _begin(self) -> tuple[Any, Any]:
        """A pooled connection inside a new transaction. A connection found dead when the
        transaction starts is replaced once, so a server restart costs no caller an error."""
        import psycopg

        for attempt in (1, 2):
            raw = self._raw()
            transaction = raw.driver_connection.transaction()
            try:
                transaction.__enter__()
                return raw, transaction
            except psycopg.OperationalError as exc:
                self._drop_dead(raw)
                raw.close()
                if attempt == 2:
                    raise self._error("write to", exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def write(self) -> Iterator[WriteTx]:
        import psycopg

        raw, transaction = self._begin()
        try:
            try:
                yield PostgresWriteTx(
                    _PgConn(raw.driver_connection), self._tokens, self.channel, self.done_channel
                )
            except BaseException as exc:
                transaction.__exit__(type(exc), exc, exc.__traceback__)
                raise
            transaction.__exit__(None, None, None)  # COMMIT
        except psycopg.OperationalError as exc:
            self._drop_dead(raw)
            raise self._error("write to", exc) from exc
        except BaseException as exc:
            self._after_error(raw, exc)
            raise
        finally:
            raw.close()

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
                    while not stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            if note.channel == self.done_channel and on_finished is not None:
                                on_finished(note.payload)
                            else:
                                on_ready()
            except Exception as exc:
                if stop.is_set():
                    return
                log.warning("listener connection lost (%s); reconnecting in %.1fs", exc, delay)
                stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stop in self._listeners:
            stop.set()
        self.engine.dispose()


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
    engine = create_engine(_sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_schema FROM information_schema.tables"
                    " WHERE table_name = 'workflow_executions' ORDER BY table_schema"
                )
            ).fetchall()
        return [r[0] for r in rows]
    finally:
        engine.dispose()
