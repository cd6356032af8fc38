"""Run priority (issue 12): a run's priority is copied to its tasks (also those added to it
later) and the search for ready tasks takes higher priority first, then in order, on SQLite,
PostgreSQL and the memory store; the run columns of a RunOrigin are stored."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from sqlalchemy import text

from cloacina import DefaultRunner
from cloacina.store.base import RunStore
from cloacina.store.memory import MemoryRunStore
from cloacina.store.records import NewTask, RunOrigin

KEY = ("prio_wf", "v1")


def _run(store: RunStore, priority: int | None, **origin: object) -> str:
    eid = str(uuid.uuid4())
    with store.write() as tx:
        tx.create_execution(
            eid,
            tenant="public",
            package="embedded",
            workflow_name=KEY[0],
            workflow_version=KEY[1],
            input_json="{}",
            tasks=[NewTask("a", 0, (), 1), NewTask("b", 1, (), 1)],
            now=time.time(),
            origin=None if priority is None else RunOrigin(priority=priority, **origin),  # type: ignore[arg-type]
        )
    return eid


def _claim_order(store: RunStore) -> list[tuple[str, str, int]]:
    """The order the search claims ready tasks in, with the priority each claim carries."""
    order: list[tuple[str, str, int]] = []
    while True:
        with store.write() as tx:
            claims = tx.claim_ready(1, [KEY], "w1", time.time())
        if not claims:
            return order
        order.append((claims[0].execution_id, claims[0].task_id, claims[0].priority))


def _check(store: RunStore) -> None:
    low = _run(store, -10)
    plain = _run(store, None)
    high = _run(store, 5)
    same = _run(store, 0)
    assert _claim_order(store) == [
        (high, "a", 5),
        (high, "b", 5),
        (plain, "a", 0),
        (plain, "b", 0),
        (same, "a", 0),
        (same, "b", 0),
        (low, "a", -10),
        (low, "b", -10),
    ]


def test_claims_prefer_higher_priority(db_url: str) -> None:
    runner = DefaultRunner(db_url, execute_tasks=False)
    try:
        _check(runner.store)
    finally:
        runner.shutdown()


def test_the_memory_store_claims_by_priority_too() -> None:
    _check(MemoryRunStore())


def test_a_runs_origin_is_stored_and_added_tasks_take_its_priority(
    db_url: str, name: Callable[[str], str]
) -> None:
    runner = DefaultRunner(db_url, execute_tasks=False)
    try:
        store = runner.store
        eid = _run(
            store,
            -3,
            scheduled_for=1767225600.0,
            schedule_id="s1",
            backfill_id="b1",
            trigger_name="t1",
            trigger_key="k" * 64,
        )
        with store.write() as tx:
            tx.add_tasks(eid, [NewTask("late", 2, ("a",), 1)], time.time())
        engine = store.engine
        with engine.connect() as conn:
            run = conn.execute(
                text(
                    "SELECT priority, scheduled_for, schedule_id, backfill_id, trigger_name,"
                    " trigger_key FROM workflow_executions WHERE id = :id"
                ),
                {"id": eid},
            ).one()
            tasks: dict[str, int] = dict(
                conn.execute(
                    text("SELECT task_id, priority FROM task_executions WHERE execution_id = :id"),
                    {"id": eid},
                ).all()
            )
        assert tuple(run) == (-3, 1767225600.0, "s1", "b1", "t1", "k" * 64)
        assert tasks == {"a": -3, "b": -3, "late": -3}
    finally:
        runner.shutdown()


def test_plain_runs_keep_priority_zero(sqlite_url: str) -> None:
    count = 3
    runner = DefaultRunner(sqlite_url, execute_tasks=False)
    try:
        ids = [_run(runner.store, None) for _ in range(count)]
        engine = runner.store.engine
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT DISTINCT priority, scheduled_for FROM workflow_executions")
            ).all()
        assert len(ids) == count and [tuple(r) for r in rows] == [(0, None)]
    finally:
        runner.shutdown()
