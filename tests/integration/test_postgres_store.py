"""The PostgreSQL store's connections, on a real server.

- SQLAlchemy Core work (migrations, packages, workers, pruning) runs in real transactions,
  while the hot path (reads, ``write()``) runs in autocommit with its own BEGIN/COMMIT — on
  the same pooled connections, whatever state the previous user left them in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text

from cloacina.store import open_store
from cloacina.store.postgres import PostgresStore
from cloacina.store.tables import workers

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[PostgresStore]:
    store = open_store(postgres_url)
    assert isinstance(store, PostgresStore)
    yield store
    store.close()


def worker_values(worker_id: str) -> dict[str, Any]:
    now = time.time()
    return {
        "id": worker_id,
        "host": "h",
        "pid": 1,
        "status": "running",
        "started_at": now,
        "last_heartbeat": now,
        "running_tasks": 0,
        "max_tasks": 1,
        "version": "test",
    }


def count_workers(store: PostgresStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(workers)).scalar_one())


# ---- SQLAlchemy Core runs in transactions; the hot path in autocommit -------------------------
def test_postgres_core_block_is_one_transaction(pg_store: PostgresStore) -> None:
    for _ in range(3):  # on fresh and on reused pooled connections alike
        pg_store.list_executions()  # the hot path used the pooled connection before
        with pg_store.engine.begin() as conn:
            first = conn.execute(text("SELECT txid_current()")).scalar_one()
            second = conn.execute(text("SELECT txid_current()")).scalar_one()
        assert first == second


def test_postgres_core_transaction_that_raises_leaves_nothing_behind(
    pg_store: PostgresStore,
) -> None:
    pg_store.list_executions()  # the hot path used the pooled connection before
    with pytest.raises(RuntimeError, match="boom"), pg_store.engine.begin() as conn:
        conn.execute(insert(workers).values(**worker_values("w1")))
        raise RuntimeError("boom")
    assert count_workers(pg_store) == 0

    # A statement that fails half way through a block undoes the block's earlier writes.
    with pytest.raises(Exception, match="duplicate key"), pg_store.engine.begin() as conn:
        conn.execute(delete(workers))
        conn.execute(insert(workers).values(**worker_values("w2")))
        conn.execute(insert(workers).values(**worker_values("w2")))
    assert count_workers(pg_store) == 0


def test_postgres_hot_path_reads_and_writes_still_autocommit(pg_store: PostgresStore) -> None:
    # Each read is a transaction of its own: no transaction (and snapshot) is left open.
    with pg_store.engine.begin() as conn:  # a Core transaction used the connection before
        conn.execute(text("SELECT txid_current()"))
    one = pg_store._fetchone("SELECT txid_current()")[0]
    two = pg_store._fetchone("SELECT txid_current()")[0]
    assert one != two
    # A write() is one transaction, and commits.
    with pg_store.write() as tx:
        c: Any = tx._c  # type: ignore[attr-defined]
        a = c.execute("SELECT txid_current()").fetchone()[0]
        c.execute(
            "INSERT INTO workers (id, host, pid, status, started_at, last_heartbeat,"
            " running_tasks, max_tasks, version) VALUES (?,?,?,?,?,?,?,?,?)",
            ("w", "h", 1, "running", 0.0, 0.0, 0, 1, "v"),
        )
        b = c.execute("SELECT txid_current()").fetchone()[0]
    assert a == b
    assert count_workers(pg_store) == 1


def test_postgres_pooled_connection_left_in_any_state_is_fine_for_the_next_user(
    postgres_url: str,
) -> None:
    store = open_store(postgres_url)
    assert isinstance(store, PostgresStore)
    try:
        # (One thread: the pool, most recently used first, hands out the same connection.)
        # Returned inside an open transaction (non-autocommit, statement run, never ended).
        raw = store.engine.raw_connection()
        raw.driver_connection.autocommit = False
        raw.driver_connection.execute("SELECT 1")
        raw.close()
        # Returned in autocommit, inside an explicit transaction.
        raw = store.engine.raw_connection()
        raw.driver_connection.autocommit = True
        raw.driver_connection.execute("BEGIN")
        raw.driver_connection.execute("SELECT txid_current()")
        raw.close()
        # Returned in autocommit and idle.
        raw = store.engine.raw_connection()
        raw.driver_connection.autocommit = True
        raw.close()
        with store.engine.begin() as conn:
            first = conn.execute(text("SELECT txid_current()")).scalar_one()
            second = conn.execute(text("SELECT txid_current()")).scalar_one()
        assert first == second
        # Returned inside a failed transaction.
        raw = store.engine.raw_connection()
        raw.driver_connection.autocommit = True
        raw.driver_connection.execute("BEGIN")
        with pytest.raises(Exception, match="division by zero"):
            raw.driver_connection.execute("SELECT 1/0")
        raw.close()
        one = store._fetchone("SELECT txid_current()")[0]
        two = store._fetchone("SELECT txid_current()")[0]
        assert one != two
        assert store.list_executions() == []
    finally:
        store.close()
