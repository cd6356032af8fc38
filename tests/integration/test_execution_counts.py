"""Counting runs by status under the runs list's filters (the web UI's counts), on SQLite,
PostgreSQL and the in-memory store."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cloacina import DefaultRunner
from cloacina.model.status import ExecutionStatus
from cloacina.store.base import RunStore
from cloacina.store.memory import MemoryRunStore
from cloacina.store.records import NewTask

pytestmark = pytest.mark.timeout(120)


def _insert(store: RunStore, created: float, name: str, *, fail: str | None = None) -> str:
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


Count = Callable[..., dict[str, int]]


def _check(store: RunStore, count: Count) -> None:
    base = time.time() - 1000
    failed = _insert(store, base, "a", fail="Boom in step")
    _insert(store, base + 10, "a")
    _insert(store, base + 20, "b")
    _insert(store, base + 30, "b", fail="other")
    counts = count()
    assert set(counts) == {s.value for s in ExecutionStatus}
    assert counts["failed"] == 2 and counts["pending"] + counts["running"] == 2
    assert sum(counts.values()) == 4
    only_a = count(workflow_name="a")
    assert only_a["failed"] == 1 and sum(only_a.values()) == 2
    since = count(since=base + 15)
    assert sum(since.values()) == 2 and since["failed"] == 1
    assert sum(count(until=base + 15).values()) == 2
    text = count(q="boom")
    assert text["failed"] == 1 and sum(text.values()) == 1
    assert sum(count(q=failed[:8]).values()) == 1
    assert sum(count(workflow_name="none").values()) == 0


@pytest.fixture
def reader(db_url: str) -> Iterator[DefaultRunner]:
    runner = DefaultRunner(db_url, execute_tasks=False)
    yield runner
    runner.shutdown()


def test_counts_by_status(reader: DefaultRunner) -> None:
    _check(reader.store, reader.count_executions)


def test_memory_store_counts() -> None:
    store = MemoryRunStore()

    def count(**filters: Any) -> dict[str, int]:
        found = store.count_executions_by_status(**filters)
        return {s.value: found.get(s.value, 0) for s in ExecutionStatus}

    _check(store, count)
