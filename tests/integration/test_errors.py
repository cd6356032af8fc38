"""Errors the runner raises or records, and their messages."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloacina import (
    CloacinaError,
    Context,
    DefaultRunner,
    ExecutionNotFoundError,
    ExecutionTimeoutError,
    RetryPolicy,
    StoreError,
    TaskStatus,
    WorkflowNotFoundError,
    task,
    workflow,
)
from cloacina.errors import ContextSerializationError, RunnerClosedError

pytestmark = pytest.mark.timeout(60)


def test_unknown_workflow_name(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    missing = name("never_defined")
    with pytest.raises(WorkflowNotFoundError, match=missing):
        runner.execute(missing)
    with pytest.raises(WorkflowNotFoundError):
        runner.schedule_workflow(missing)
    assert runner.list_executions() == []


class _Opaque:
    pass


@pytest.mark.parametrize(
    "bad_value",
    [{1, 2}, _Opaque(), datetime.date(2024, 1, 1), float("nan")],
    ids=["set", "object", "date", "nan"],
)
def test_task_inserting_non_json_value_fails_naming_the_key(
    runner: DefaultRunner, name: Callable[[str], str], bad_value: Any
) -> None:
    ran: list[str] = []
    wf_name = name("non_json")

    @workflow(name=wf_name)
    class NonJson:
        @task
        def good(context: Context) -> None:
            context.insert("fine", [1, 2, 3])

        @task(dependencies=[good])
        def bad(context: Context) -> None:
            context.insert("weird_value", bad_value)

        @task(dependencies=[bad])
        def after(context: Context) -> None:
            ran.append("after")

    result = runner.execute(wf_name, timeout=10)

    assert result.status == "failed"
    assert result.tasks["good"].status == TaskStatus.COMPLETED
    bad = result.tasks["bad"]
    assert bad.status == TaskStatus.FAILED
    assert bad.error is not None
    assert "'weird_value'" in bad.error
    assert "bad" in (result.error or "")
    assert result.tasks["after"].status == TaskStatus.SKIPPED
    assert ran == []


def test_task_returning_non_json_dict_fails_naming_the_key(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("non_json_return")

    @workflow(name=wf_name)
    class NonJsonReturn:
        @task
        def returns_set(context: Context) -> dict[str, Any]:
            return {"tags": {"a", "b"}}

    result = runner.execute(wf_name, timeout=10)

    assert result.status == "failed"
    assert "'tags'" in (result.tasks["returns_set"].error or "")


def test_task_returning_non_dict_fails(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    wf_name = name("returns_int")
    policy = RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=False)

    @workflow(name=wf_name)
    class ReturnsInt:
        @task(retry=policy)
        def returns_int(context: Context) -> int:
            return 42

    result = runner.execute(wf_name, timeout=10)

    assert result.status == "failed"
    err = result.tasks["returns_int"].error or ""
    assert "returns_int" in err and "int" in err
    assert result.tasks["returns_int"].attempts == 1  # a programming error is not retried


def test_non_json_input_context_raises_at_once(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    ran: list[str] = []
    wf_name = name("bad_input")

    @workflow(name=wf_name)
    class BadInput:
        @task
        def only(context: Context) -> None:
            ran.append("only")

    with pytest.raises(ContextSerializationError, match="'when'") as info:
        runner.execute(wf_name, {"ok": 1, "when": datetime.datetime(2024, 1, 1)}, timeout=5)
    assert info.value.key == "when"
    assert isinstance(info.value, CloacinaError)
    with pytest.raises(ContextSerializationError, match="'ids'"):
        runner.schedule_workflow(wf_name, Context({"ids": {1, 2}}))

    assert runner.list_executions() == [], "a rejected input must not create a run"
    assert ran == []


def test_non_mapping_context_is_rejected(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    wf_name = name("list_input")

    @workflow(name=wf_name)
    class ListInput:
        @task
        def only(context: Context) -> None:
            pass

    with pytest.raises(TypeError, match="Context or a dict"):
        runner.schedule_workflow(wf_name, [("a", 1)])  # type: ignore[arg-type]


def test_database_in_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(StoreError) as info:
        DefaultRunner(f"sqlite:///{missing}/t.db", poll_interval=0.05)
    message = str(info.value)
    assert "does not exist" in message
    assert str(missing) in message
    assert not missing.exists(), "opening must not create the directory silently"


def test_database_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="directory"):
        DefaultRunner(f"sqlite:///{tmp_path}", poll_interval=0.05)


def test_database_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database file, not at all" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db"):
        DefaultRunner(f"sqlite:///{path}", poll_interval=0.05)


def test_in_memory_database_is_rejected() -> None:
    with pytest.raises(StoreError, match="in-memory"):
        DefaultRunner("sqlite:///:memory:")


def test_wait_with_tiny_timeout(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    release = threading.Event()
    wf_name = name("slow")

    @workflow(name=wf_name)
    class Slow:
        @task
        def slow(context: Context) -> None:
            release.wait(10)
            context.insert("done", True)

    eid = runner.schedule_workflow(wf_name)
    with pytest.raises(ExecutionTimeoutError, match=eid):
        runner.wait(eid, timeout=0.05)
    with pytest.raises(TimeoutError):  # also a builtin TimeoutError
        runner.wait(eid, timeout=0.01)

    release.set()
    result = runner.wait(eid, timeout=10)
    assert result.status == "completed"
    assert result.final_context == {"done": True}


def test_execute_with_tiny_timeout_leaves_run_going(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    release = threading.Event()
    wf_name = name("execute_timeout")

    @workflow(name=wf_name)
    class ExecuteTimeout:
        @task
        def slow(context: Context) -> None:
            release.wait(10)

    with pytest.raises(ExecutionTimeoutError):
        runner.execute(wf_name, timeout=0.05)
    [run] = runner.list_executions(workflow_name=wf_name)
    assert run.status == "running"
    release.set()
    assert runner.wait(run.execution_id, timeout=10).status == "completed"


def test_unknown_execution_id(runner: DefaultRunner) -> None:
    with pytest.raises(ExecutionNotFoundError, match="nope"):
        runner.get_execution("nope")
    with pytest.raises(ExecutionNotFoundError):
        runner.wait("nope", timeout=1)


def test_closed_runner_refuses_work(make_runner: Callable[..., DefaultRunner]) -> None:
    runner = make_runner()
    runner.shutdown()
    runner.shutdown()  # idempotent
    with pytest.raises(RunnerClosedError):
        runner.schedule_workflow("anything")
