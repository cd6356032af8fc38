"""Listing runs created since a moment, on every store (issue 9, item 28)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from cloacina import DefaultRunner
from cloacina.store.base import ExecutionQueries, RunStore
from cloacina.store.memory import MemoryRunStore
from cloacina.store.records import NewTask

pytestmark = pytest.mark.timeout(60)


def _insert(store: RunStore, created: float, name: str = "wf") -> str:
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
    return eid


def _check(store: RunStore, queries: ExecutionQueries) -> None:
    old = _insert(store, 1_000.0)
    edge = _insert(store, 2_000.0)
    new = _insert(store, 3_000.0, name="other")

    def ids(**kwargs: object) -> list[str]:
        return [r.id for r in queries.list_executions(**kwargs)]  # type: ignore[arg-type]

    assert ids() == [new, edge, old]
    assert ids(since=2_000.0) == [new, edge]  # created at the moment itself counts
    assert ids(since=2_000.5) == [new]
    assert ids(since=2_000.0, workflow_name="wf") == [edge]
    assert ids(since=2_000.0, status="running", limit=1) == [new]
    assert ids(since=4_000.0) == []


def test_since_on_the_memory_store() -> None:
    store = MemoryRunStore()
    _check(store, store)


def test_since_on_the_database_and_through_the_runner(db_url: str) -> None:
    runner = DefaultRunner(db_url, execute_tasks=False)
    try:
        _check(runner.store, runner.store)
        listed = runner.list_executions(since=datetime.fromtimestamp(2_500.0, UTC))
        assert [r.workflow_name for r in listed] == ["other"]
        assert len(runner.list_executions(since=1_500.0)) == 2
    finally:
        runner.shutdown()
