"""Listing runs a page at a time (issue 10, item 1): newest first by (created_at, id), an
opaque cursor, the filters, and the first page of 100,000 runs read from an index."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cloacina import DefaultRunner
from cloacina.errors import RequestError
from cloacina.model.status import ExecutionStatus
from cloacina.store.base import RunStore
from cloacina.store.memory import MemoryRunStore
from cloacina.store.records import NewEvent, NewTask
from cloacina.store.sql_reads import SQLStore, list_executions_query

pytestmark = pytest.mark.timeout(300)


def _insert(store: RunStore, created: float, name: str = "wf", *, fail: str | None = None) -> str:
    eid = str(uuid.uuid4())
    with store.write() as tx:
        tx.create_execution(
            eid,
            tenant="public",
            package="embedded",
            workflow_name=name,
            workflow_version="v1",
            input_json="{}",
            tasks=[NewTask("only", 0, (), 1)],
            now=created,
        )
        if fail is not None:
            tx.finish_run(eid, ExecutionStatus.FAILED, created + 1, final_json=None, error=fail)
    return eid


@pytest.fixture
def reader(db_url: str) -> Iterator[DefaultRunner]:
    runner = DefaultRunner(db_url, execute_tasks=False)
    yield runner
    runner.shutdown()


def _all_pages(runner: DefaultRunner, limit: int, **filters: Any) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = runner.list_executions_page(limit=limit, cursor=cursor, **filters)
        assert len(page.items) <= limit
        seen += [r.execution_id for r in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def test_pages_cover_every_run_once_newest_first(reader: DefaultRunner) -> None:
    # Ties on created_at (runs submitted in the same instant) are ordered by id.
    made = [(1_000.0 + i // 3, _insert(reader.store, 1_000.0 + i // 3)) for i in range(23)]
    expected = [eid for _t, eid in sorted(made, reverse=True)]
    assert _all_pages(reader, 5) == expected
    assert _all_pages(reader, 23) == expected
    last = reader.list_executions_page(limit=23)
    assert last.next_cursor is None  # exactly one page: no empty page after it
    assert reader.list_executions(limit=4) == reader.list_executions_page(limit=4).items


def test_inserts_between_pages_neither_repeat_nor_skip(reader: DefaultRunner) -> None:
    for i in range(10):
        _insert(reader.store, 2_000.0 + i)
    first = reader.list_executions_page(limit=4)
    # New runs arrive while the pages are read: newer ones (which sort before the cursor)
    # and one created in the very instant of the last run shown, with a larger id or not.
    tie = first.items[-1]
    assert tie.created_at is not None
    for _ in range(3):
        _insert(reader.store, 3_000.0)
        _insert(reader.store, tie.created_at.timestamp())
    seen = [r.execution_id for r in first.items]
    cursor = first.next_cursor
    while cursor is not None:
        page = reader.list_executions_page(limit=4, cursor=cursor)
        seen += [r.execution_id for r in page.items]
        _insert(reader.store, 3_500.0)
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)), "a run was listed twice"
    tie_ts = tie.created_at.timestamp()
    older = [
        r.execution_id
        for r in reader.list_executions(limit=500)
        if r.created_at is not None
        and (r.created_at.timestamp(), r.execution_id) <= (tie_ts, tie.execution_id)
    ]
    # Every run at or after the first page's last, as it stood, was read: no gap.
    assert set(older) <= set(seen)
    assert seen[: len(first.items)] == [r.execution_id for r in first.items]


def test_filters(reader: DefaultRunner) -> None:
    a = _insert(reader.store, 1_000.0, "alpha")
    b = _insert(reader.store, 2_000.0, "beta", fail="Disk FULL on /var")
    c = _insert(reader.store, 3_000.0, "alpha", fail="timeout 50%_done")
    d = _insert(reader.store, 4_000.0, "beta")

    def ids(**filters: Any) -> list[str]:
        return _all_pages(reader, 2, **filters)

    assert ids() == [d, c, b, a]
    assert ids(status="failed") == [c, b]
    assert ids(workflow_name="alpha") == [c, a]
    assert ids(since=2_000.0, until=4_000.0) == [c, b]  # since inclusive, until exclusive
    assert ids(q="disk full") == [b]  # text in the error, any case
    assert ids(q=a[:8].upper()) == [a]  # text in the id
    assert ids(q="50%_") == [c]  # LIKE's wildcards are literal
    assert ids(q="%") == [c]
    assert ids(status="failed", workflow_name="beta", q="disk") == [b]
    assert ids(status="completed") == []
    with pytest.raises(RequestError, match="unknown execution status"):
        reader.list_executions_page(status="bogus")
    with pytest.raises(RequestError, match="limit"):
        reader.list_executions_page(limit=501)
    with pytest.raises(RequestError, match="limit"):
        reader.list_executions_page(limit=0)
    with pytest.raises(RequestError, match="invalid cursor"):
        reader.list_executions_page(cursor="not a cursor!")


def test_the_memory_store_pages_alike() -> None:
    store = MemoryRunStore()
    made = sorted((1_000.0 + i // 4, _insert(store, 1_000.0 + i // 4)) for i in range(9))
    rows = store.list_executions(limit=3)
    assert [r.id for r in rows] == [e for _t, e in reversed(made)][:3]
    after = store.list_executions(limit=100, before=(rows[-1].created_at, rows[-1].id))
    assert [r.id for r in rows + after] == [e for _t, e in reversed(made)]
    failed = _insert(store, 5_000.0, fail="Boom")
    assert [r.id for r in store.list_executions(q="boom", until=6_000.0)] == [failed]


# ---- the first page of 100,000 runs ----------------------------------------------------------
ROWS = 100_000


def _fill(store: SQLStore, backend: str) -> None:
    """ROWS finished and running runs over a few workflows, inserted in bulk."""
    if backend == "postgres":
        sql = (
            "INSERT INTO workflow_executions (id, tenant, package, workflow_name,"
            " workflow_version, status, tasks_total, tasks_remaining, tasks_failed,"
            " created_at, updated_at)"
            " SELECT md5(g::text), 'public', 'embedded', 'wf' || mod(g, 7), 'v1',"
            " CASE WHEN mod(g, 10) = 0 THEN 'failed' ELSE 'completed' END, 1, 0, 0,"
            " 1000000 + g * 0.5, 1000000 + g * 0.5 FROM generate_series(1, %s) g"
        )
        with store.engine.begin() as conn:
            conn.exec_driver_sql(sql, (ROWS,))
            conn.exec_driver_sql("ANALYZE workflow_executions")
        return
    rows = [
        (
            uuid.uuid4().hex,
            f"wf{i % 7}",
            "failed" if i % 10 == 0 else "completed",
            1_000_000 + i * 0.5,
        )
        for i in range(1, ROWS + 1)
    ]
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO workflow_executions (id, tenant, package, workflow_name,"
            " workflow_version, status, tasks_total, tasks_remaining, tasks_failed,"
            " created_at, updated_at) VALUES (?, 'public', 'embedded', ?, 'v1', ?, 1, 0, 0, ?, ?)",
            [(eid, wf, st, at, at) for eid, wf, st, at in rows],
        )
        conn.exec_driver_sql("ANALYZE")


def _plan(store: SQLStore, backend: str, **filters: Any) -> str:
    sql, params = list_executions_query(limit=51, **filters)
    prefix = "EXPLAIN " if backend == "postgres" else "EXPLAIN QUERY PLAN "
    rows = store._fetchall(prefix + sql, params)
    return "\n".join(" ".join(str(c) for c in r) for r in rows)


def test_first_page_of_100000_runs_reads_an_index(reader: DefaultRunner, backend: str) -> None:
    store = reader.store
    assert isinstance(store, SQLStore)
    _fill(store, backend)
    for filters, index in (
        ({}, "ix_workflow_executions_page"),
        ({"status": "failed"}, "ix_workflow_executions_status_page"),
        ({"before": (1_000_000 + 50_000 * 0.5, "f" * 8)}, "ix_workflow_executions_page"),
        (
            {"status": "failed", "before": (1_000_000 + 10_000.0, "0")},
            "ix_workflow_executions_status_page",
        ),
    ):
        plan = _plan(store, backend, **filters)
        assert index in plan, f"{filters}: {plan}"
        # Read in index order: no sort of the rows (SQLite: a temp B-tree for ORDER BY).
        assert "TEMP B-TREE" not in plan.upper() and "Sort" not in plan, f"{filters}: {plan}"
        if backend == "postgres":
            assert "Seq Scan" not in plan, f"{filters}: {plan}"
        else:
            assert "SCAN workflow_executions\n" not in plan + "\n", f"{filters}: {plan}"
    took = []
    for _ in range(5):
        start = time.perf_counter()
        page = reader.list_executions_page(limit=50)
        took.append(time.perf_counter() - start)
    assert len(page.items) == 50 and page.next_cursor is not None
    times = [r.created_at.timestamp() for r in page.items if r.created_at is not None]
    assert times == sorted(times, reverse=True) and times[0] == 1_000_000 + ROWS * 0.5
    second = reader.list_executions_page(limit=50, cursor=page.next_cursor)
    assert second.items[0].created_at is not None
    assert second.items[0].created_at.timestamp() < times[-1]
    # The bar is 50 ms; on a loaded 2-core test machine allow ample room, the plan
    # assertions above are what proves the index is used.
    assert sorted(took)[2] < 0.5, took


def test_events_and_attempts_through_the_runner(reader: DefaultRunner) -> None:
    eid = _insert(reader.store, time.time())
    with reader.store.write() as tx:
        tx.add_events([NewEvent(eid, "only", "task_started", 1, '{"x": 1}', time.time())])
    events = reader.get_events(eid)
    assert [e.type for e in events] == ["execution_started", "task_started"] or [
        e.type for e in events
    ] == ["task_started"]
    started = events[-1]
    assert started.detail == {"x": 1} and started.task_id == "only" and started.attempt == 1
    assert reader.get_events(eid, after=started.seq) == []
    assert reader.get_attempts(eid) == []
    found = reader.find_execution(eid[:10])
    assert found.execution_id == eid and "only" in found.tasks
    assert found.tasks["only"].max_attempts == 1 and found.tasks_total == 1
