"""The PostgreSQL store's connections, channels and opening, on a real server.

- SQLAlchemy Core work (migrations, packages, workers, pruning) runs in real transactions,
  while the hot path (reads, ``write()``) runs in autocommit with its own BEGIN/COMMIT — on
  the same pooled connections, whatever state the previous user left them in.
- Every valid tenant name works, including 63-character ones (whose NOTIFY channels would be
  too long if they were simply ``cloacina_<schema>_done``).
- Opening works with a pool of one connection, and when several openers race on a fresh
  database or tenant.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.pool import PoolProxiedConnection

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.store import Store, open_store
from cloacina.store.postgres import PostgresStore
from cloacina.store.records import NewTask
from cloacina.store.tables import workers

pytestmark = pytest.mark.timeout(90)

#: Valid tenant names whose channels do not fit ``cloacina_<schema>_done`` in 63 bytes.
LONG_TENANTS = [
    pytest.param("t" + "x" * 49, id="50-chars"),
    pytest.param("t" + "x" * 62, id="63-chars"),
]


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


def driver_connection(raw: PoolProxiedConnection) -> Any:
    """The psycopg connection under a pooled SQLAlchemy one (typed ``Any`` by SQLAlchemy)."""
    dbapi = raw.driver_connection
    assert dbapi is not None  # None only once the pooled connection is invalidated
    return dbapi


def test_postgres_pooled_connection_left_in_any_state_is_fine_for_the_next_user(
    postgres_url: str,
) -> None:
    store = open_store(postgres_url)
    assert isinstance(store, PostgresStore)
    try:
        # (One thread: the pool, most recently used first, hands out the same connection.)
        # Returned inside an open transaction (non-autocommit, statement run, never ended).
        raw = store.engine.raw_connection()
        dbapi = driver_connection(raw)
        dbapi.autocommit = False
        dbapi.execute("SELECT 1")
        raw.close()
        # Returned in autocommit, inside an explicit transaction.
        raw = store.engine.raw_connection()
        dbapi = driver_connection(raw)
        dbapi.autocommit = True
        dbapi.execute("BEGIN")
        dbapi.execute("SELECT txid_current()")
        raw.close()
        # Returned in autocommit and idle.
        raw = store.engine.raw_connection()
        dbapi = driver_connection(raw)
        dbapi.autocommit = True
        raw.close()
        with store.engine.begin() as conn:
            first = conn.execute(text("SELECT txid_current()")).scalar_one()
            second = conn.execute(text("SELECT txid_current()")).scalar_one()
        assert first == second
        # Returned inside a failed transaction.
        raw = store.engine.raw_connection()
        dbapi = driver_connection(raw)
        dbapi.autocommit = True
        dbapi.execute("BEGIN")
        with pytest.raises(Exception, match="division by zero"):
            dbapi.execute("SELECT 1/0")
        raw.close()
        one = store._fetchone("SELECT txid_current()")[0]
        two = store._fetchone("SELECT txid_current()")[0]
        assert one != two
        assert store.list_executions() == []
    finally:
        store.close()


# ---- long tenant names ----------------------------------------------------------------------
@pytest.mark.parametrize("tenant", LONG_TENANTS)
def test_postgres_long_tenant_name_runs_and_is_notified(postgres_url: str, tenant: str) -> None:
    wf_name = f"long_tenant_{uuid.uuid4().hex[:10]}"

    @workflow(name=wf_name)
    class LongTenant:
        @task
        def first(context: Context) -> None:
            context.insert("first", True)

        @task(dependencies=[first])
        def second(context: Context) -> None:
            context.insert("second", True)

    fast: dict[str, Any] = {"heartbeat_interval": 0.1, "stale_claim_threshold": 0.5}
    with DefaultRunner(postgres_url, tenant=tenant, poll_interval=0.05, **fast) as runner:
        result = runner.execute(wf_name, timeout=20)
        assert result.status == "completed", result.error
        assert result.tenant == tenant
        assert result.final_context == {"first": True, "second": True}

    # A client that only submits, and a worker: with polls far apart, the worker hears of the
    # new run and the client of its end only through NOTIFY.
    slow: dict[str, Any] = {"poll_interval": 30.0}
    with (
        DefaultRunner(postgres_url, tenant=tenant, execute_tasks=False, **slow) as client,
        DefaultRunner(postgres_url, tenant=tenant, **slow) as worker,
    ):
        stores: list[Any] = [client.store, worker.store]
        deadline = time.monotonic() + 10
        while not all(s.notifying for s in stores):
            assert time.monotonic() < deadline, "the listeners did not connect"
            time.sleep(0.01)
        started = time.monotonic()
        eid = client.schedule_workflow(wf_name)
        done = client.wait(eid, timeout=15)
        assert done.status == "completed", done.error
        assert time.monotonic() - started < 10
        assert {r.execution_id for r in client.list_executions(status="completed")} == {
            result.execution_id,
            eid,
        }


def test_postgres_channels_fit_and_are_distinct(postgres_url: str) -> None:
    tenants = ["acme", "t" + "x" * 49, "t" + "x" * 62, "t" + "x" * 61 + "y"]
    channels: list[str] = []
    for tenant in tenants:
        store = open_store(postgres_url, tenant=tenant)
        assert isinstance(store, PostgresStore)
        try:
            for channel in (store.channel, store.done_channel):
                assert len(channel.encode()) <= 63
                channels.append(channel)
        finally:
            store.close()
    assert len(set(channels)) == len(channels)
    # Short tenant names keep their readable channels.
    assert channels[:2] == ["cloacina_acme", "cloacina_acme_done"]


# ---- opening ----------------------------------------------------------------------------------
@pytest.mark.parametrize("tenant", ["public", "acme"])
def test_postgres_open_with_a_pool_of_one_connection(postgres_url: str, tenant: str) -> None:
    started = time.monotonic()
    store = open_store(postgres_url, tenant=tenant, pool_size=1, max_overflow=0, pool_timeout=5)
    assert time.monotonic() - started < 5
    try:
        with store.write() as tx:
            tx.create_execution(
                "run-1",
                tenant=tenant,
                package="embedded",
                workflow_name="wf",
                workflow_version="v1",
                input_json="{}",
                tasks=[NewTask("only", 0, (), 1)],
                now=time.time(),
            )
        assert store.execution_status("run-1") == "running"
        assert [r.id for r in store.list_executions()] == ["run-1"]
    finally:
        store.close()
    # Opening the database again (already migrated) works the same.
    again = open_store(postgres_url, tenant=tenant, pool_size=1, max_overflow=0, pool_timeout=5)
    try:
        assert again.execution_status("run-1") == "running"
    finally:
        again.close()


def test_postgres_runner_with_a_pool_of_one_connection_runs_a_workflow(
    postgres_url: str,
) -> None:
    wf_name = f"pool_one_{uuid.uuid4().hex[:10]}"

    @workflow(name=wf_name)
    class PoolOne:
        @task
        def only(context: Context) -> None:
            context.insert("ran", True)

    with DefaultRunner(
        postgres_url, pool_size=1, max_overflow=0, pool_timeout=5, poll_interval=0.05
    ) as runner:
        result = runner.execute(wf_name, timeout=20)
    assert result.status == "completed", result.error
    assert result.final_context == {"ran": True}


def open_at_once(url: str, tenant: str, count: int) -> tuple[list[Store], list[BaseException]]:
    """Open ``count`` stores of ``url`` from as many threads, released together."""
    barrier = threading.Barrier(count)
    stores: list[Store] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def open_one() -> None:
        barrier.wait()
        try:
            store = open_store(url, tenant=tenant)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            stores.append(store)

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return stores, errors


@pytest.mark.parametrize("tenant", ["public", "acme"])
def test_postgres_concurrent_openers_of_a_fresh_database_all_succeed(
    postgres_database: Callable[[], str], tenant: str
) -> None:
    for _ in range(3):  # a fresh database each round: the race is on creation
        stores, errors = open_at_once(postgres_database(), tenant, 6)
        try:
            assert errors == []
            assert len(stores) == 6
            for store in stores:
                assert store.list_executions() == []
        finally:
            for store in stores:
                store.close()


def test_postgres_exhausted_pool_is_a_clear_store_error(postgres_url: str) -> None:
    from cloacina.errors import StoreError

    store = open_store(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.5)
    try:
        assert isinstance(store, PostgresStore)
        # The write holds the only connection: a read cannot have one.
        with store.write(), pytest.raises(StoreError, match=r"no free connection .* pool_size"):
            store.get_execution("nope")
        assert store.get_execution("nope") is None  # free again afterwards
    finally:
        store.close()
