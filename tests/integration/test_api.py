"""The runner's public surface on a real file: async twins, result fields, listings."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from cloacina import (
    Context,
    DefaultRunner,
    ExecutionStatus,
    InvalidStateError,
    TaskStatus,
    task,
    workflow,
)

pytestmark = pytest.mark.timeout(60)


def test_async_twins(db_url: str, name: Callable[[str], str]) -> None:
    wf_name = name("async_api")
    blocker_name = name("async_api_block")
    started = threading.Event()

    @workflow(name=wf_name)
    class AsyncApi:
        @task
        async def a(context: Context) -> None:
            await asyncio.sleep(0.01)
            context.insert("a", context["x"] + 1)

        @task(dependencies=[a])
        def b(context: Context) -> None:
            context.insert("b", context["a"] + 1)

    @workflow(name=blocker_name)
    class AsyncApiBlock:
        @task
        async def hold(context: Context) -> None:
            started.set()
            await asyncio.sleep(30)

    async def main() -> None:
        async with DefaultRunner(
            db_url, poll_interval=0.05, heartbeat_interval=0.1, stale_claim_threshold=0.5
        ) as runner:
            result = await runner.execute_async(wf_name, {"x": 1}, timeout=10)
            assert result.status == "completed"
            assert result.final_context == {"x": 1, "a": 2, "b": 3}

            eid = await runner.schedule_workflow_async(wf_name, Context({"x": 10}))
            waited = await runner.wait_async(eid, timeout=10)
            assert waited.final_context == {"x": 10, "a": 11, "b": 12}
            fetched = await runner.get_execution_async(eid)
            assert fetched == waited

            # Several runs awaited together from one event loop.
            many = await asyncio.gather(
                *(runner.execute_async(wf_name, {"x": i}, timeout=10) for i in range(5))
            )
            assert [r.final_context["b"] for r in many] == [i + 2 for i in range(5)]

            blocked = await runner.schedule_workflow_async(blocker_name)
            await asyncio.to_thread(started.wait, 10)
            await runner.pause_async(blocked)
            assert (await runner.get_execution_async(blocked)).status == "paused"
            await runner.resume_async(blocked)
            await runner.cancel_async(blocked)
            assert (await runner.wait_async(blocked, timeout=5)).status == "cancelled"
            with pytest.raises(InvalidStateError):
                await runner.cancel_async(blocked)

    asyncio.run(main())


def test_result_fields(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    wf_name = name("fields")

    @workflow(name=wf_name)
    class Fields:
        @task
        def a(context: Context) -> None:
            context.insert("a", 1)

        @task(dependencies=[a])
        async def b(context: Context) -> None:
            await asyncio.sleep(0.05)

    result = runner.execute(wf_name, timeout=10)

    assert result.status is ExecutionStatus.COMPLETED
    assert str(result.status) == "completed" and f"{result.status}" == "completed"
    assert result.succeeded
    assert len(result.execution_id) >= 32
    assert len(result.workflow_version) == 64  # a SHA-256
    assert result.package == "embedded" and result.tenant == "public"
    assert result.started_at is not None and result.finished_at is not None
    assert result.started_at <= result.finished_at
    assert result.duration is not None and result.duration >= 0.05
    assert list(result.tasks) == ["a", "b"]
    for tid, t in result.tasks.items():
        assert t.task_id == tid
        assert t.status is TaskStatus.COMPLETED
        assert t.started_at is not None and t.finished_at is not None
        assert result.started_at <= t.started_at <= t.finished_at <= result.finished_at
    assert result.tasks["a"].finished_at <= result.tasks["b"].started_at  # type: ignore[operator]
    assert (result.tasks["b"].duration or 0) >= 0.05


def test_same_workflow_version_across_runs(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("version")

    @workflow(name=wf_name)
    class Version:
        @task
        def only(context: Context) -> None:
            pass

    first = runner.execute(wf_name)
    second = runner.execute(wf_name)
    assert first.workflow_version == second.workflow_version
    assert first.execution_id != second.execution_id


def test_list_executions_filters(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    ok_name, bad_name = name("listed_ok"), name("listed_bad")

    @workflow(name=ok_name)
    class ListedOk:
        @task
        def fine(context: Context) -> None:
            pass

    @workflow(name=bad_name)
    class ListedBad:
        @task
        def broken(context: Context) -> None:
            raise RuntimeError("no")

    ok_ids = [runner.execute(ok_name).execution_id for _ in range(3)]
    bad_id = runner.execute(bad_name).execution_id

    listed = runner.list_executions(workflow_name=ok_name)
    assert sorted(r.execution_id for r in listed) == sorted(ok_ids)
    assert all(r.status == "completed" and r.workflow_name == ok_name for r in listed)
    failed = runner.list_executions(status="failed")
    assert [r.execution_id for r in failed] == [bad_id]
    assert len(runner.list_executions(limit=2)) == 2
    newest_first = runner.list_executions()
    assert newest_first[0].execution_id == bad_id
    assert {w.name for w in runner.list_workflows()} >= {ok_name, bad_name}
