"""Task timeouts (DESIGN.md §4, "Timeouts"): async tasks are cancelled, sync ones abandoned."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from cloacina import (
    Context,
    DefaultRunner,
    RetryPolicy,
    Task,
    TaskStatus,
    current_task,
    task,
    workflow,
)

pytestmark = pytest.mark.timeout(60)


def _attempt() -> int:
    info = current_task()
    assert info is not None
    return info.attempt


def test_async_task_past_timeout_fails_and_is_cancelled(
    runner: DefaultRunner, name: Callable[[str], str], events: Callable[..., list[str]]
) -> None:
    cancelled = threading.Event()
    wf_name = name("async_timeout")

    @workflow(name=wf_name)
    class AsyncTimeout:
        @task(timeout=0.2)
        async def sleepy(context: Context) -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            context.insert("woke", True)

        @task(dependencies=[sleepy])
        def after(context: Context) -> None:
            context.insert("after", True)

    started = time.monotonic()
    result = runner.execute(wf_name, timeout=20)
    elapsed = time.monotonic() - started

    assert result.status == "failed"
    sleepy = result.tasks["sleepy"]
    assert sleepy.status == TaskStatus.FAILED
    assert sleepy.attempts == 1
    assert sleepy.error is not None and "timed out" in sleepy.error
    assert "sleepy" in sleepy.error
    assert result.tasks["after"].status == TaskStatus.SKIPPED
    assert cancelled.is_set(), "the coroutine should have been cancelled at its timeout"
    assert elapsed < 5
    assert events(runner, result.execution_id, "sleepy") == ["task_started", "task_failed"]


def test_async_timeout_is_retryable(
    runner: DefaultRunner, name: Callable[[str], str], events: Callable[..., list[str]]
) -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=False)
    attempts: list[int] = []
    wf_name = name("async_timeout_retry")

    @workflow(name=wf_name)
    class AsyncTimeoutRetry:
        @task(timeout=0.2, retry=policy)
        async def slow_then_fast(context: Context) -> None:
            attempts.append(_attempt())
            if _attempt() < 3:
                await asyncio.sleep(10)
            context.insert("finished_on", _attempt())

    result = runner.execute(wf_name, timeout=20)

    assert result.status == "completed"
    assert result.tasks["slow_then_fast"].attempts == 3
    assert attempts == [1, 2, 3]
    assert result.final_context == {"finished_on": 3}
    names = events(runner, result.execution_id, "slow_then_fast")
    assert names.count("task_retry_scheduled") == 2
    retry_details = [
        e.detail
        for e in runner.store.get_events(result.execution_id)
        if e.event == "task_retry_scheduled"
    ]
    assert all(d is not None and "timed out" in d for d in retry_details)


def test_async_timeout_exhausts_retries(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    policy = RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False)
    wf_name = name("async_timeout_exhaust")

    @workflow(name=wf_name)
    class AsyncTimeoutExhaust:
        @task(timeout=0.1, retry=policy)
        async def never_fast(context: Context) -> None:
            await asyncio.sleep(10)

    result = runner.execute(wf_name, timeout=20)

    assert result.status == "failed"
    assert result.tasks["never_fast"].attempts == 2
    assert "timed out" in (result.tasks["never_fast"].error or "")
    assert "never_fast" in (result.error or "")


def test_sync_task_past_timeout_fails_and_late_result_is_ignored(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    body_finished = threading.Event()
    wf_name = name("sync_timeout")

    @workflow(name=wf_name)
    class SyncTimeout:
        @task(timeout=0.2)
        def blocking(context: Context) -> None:
            time.sleep(0.8)
            context.insert("late", True)
            body_finished.set()

        @task(dependencies=[blocking])
        def after(context: Context) -> None:
            context.insert("after", True)

    started = time.monotonic()
    result = runner.execute(wf_name, timeout=20)
    elapsed = time.monotonic() - started

    assert result.status == "failed"
    blocking = result.tasks["blocking"]
    assert blocking.status == TaskStatus.FAILED
    assert blocking.attempts == 1
    assert blocking.error is not None and "timed out" in blocking.error
    assert result.tasks["after"].status == TaskStatus.SKIPPED
    assert elapsed < 0.7, "the timeout must be reported before the body returns"

    # The body finishes later; its result must not resurrect the task.
    assert body_finished.wait(5)
    time.sleep(0.2)
    again = runner.get_execution(result.execution_id)
    assert again.status == "failed"
    assert again.tasks["blocking"].status == TaskStatus.FAILED
    assert again.tasks["after"].status == TaskStatus.SKIPPED
    assert again.final_context == result.final_context
    assert runner.store.get_outputs(result.execution_id, ["blocking"]) == {}


def test_sync_timeout_is_retryable(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    policy = RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False)
    wf_name = name("sync_timeout_retry")

    @workflow(name=wf_name)
    class SyncTimeoutRetry:
        @task(timeout=0.2, retry=policy)
        def slow_first(context: Context) -> None:
            attempt = _attempt()
            if attempt == 1:
                time.sleep(0.6)
            context.set("attempt", attempt)

    result = runner.execute(wf_name, timeout=20)

    assert result.status == "completed"
    assert result.tasks["slow_first"].attempts == 2
    assert result.final_context == {"attempt": 2}
    # The abandoned first attempt finishes later and must not overwrite the output.
    time.sleep(0.6)
    again = runner.get_execution(result.execution_id)
    assert again.final_context == {"attempt": 2}
    assert again.tasks["slow_first"].attempts == 2
    assert again.tasks["slow_first"].status == TaskStatus.COMPLETED


def test_task_within_timeout_completes(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    wf_name = name("in_time")

    @workflow(name=wf_name)
    class InTime:
        @task(timeout=2)
        async def quick_async(context: Context) -> None:
            await asyncio.sleep(0.05)
            context.insert("a", 1)

        @task(timeout=2)
        def quick_sync(context: Context) -> None:
            time.sleep(0.05)
            context.insert("s", 1)

    result = runner.execute(wf_name, timeout=20)

    assert result.status == "completed"
    assert result.final_context == {"a": 1, "s": 1}


@pytest.mark.parametrize("limit", [1, 2])
def test_sync_timeouts_do_not_starve_next_task(
    make_runner: Callable[..., DefaultRunner], name: Callable[[str], str], limit: int
) -> None:
    """After a sync task times out its thread keeps running (it cannot be killed) while its
    slot is given back. Even after several such timeouts, the next task must get to run
    promptly, and each stuck task's timeout is measured from when its body started."""
    runner = make_runner(max_concurrent_tasks=limit)
    quick_ran = threading.Event()
    stuck_bodies: list[str] = []
    wf_name = name("sync_timeout_slot")
    stuck_ids = [f"stuck{i}" for i in range(3 * limit)]

    def stuck_task(tid: str) -> Task:
        def body(context: Context) -> None:
            stuck_bodies.append(tid)
            time.sleep(2.5)

        body.__name__ = tid
        return task(id=tid, timeout=0.2)(body)

    def quick(context: Context) -> None:
        time.sleep(0.05)
        quick_ran.set()
        context.insert("quick", True)

    members: dict[str, Task] = {tid: stuck_task(tid) for tid in stuck_ids}
    members["quick"] = task(
        id="quick", dependencies=stuck_ids, trigger_rule="all_done", timeout=0.5
    )(quick)
    workflow(name=wf_name)(type("SyncTimeoutSlot", (), members))

    started = time.monotonic()
    result = runner.execute(wf_name, timeout=20)
    elapsed = time.monotonic() - started

    for stuck in stuck_ids:
        assert result.tasks[stuck].status == TaskStatus.FAILED
        assert "timed out" in (result.tasks[stuck].error or "")
    assert sorted(stuck_bodies) == sorted(stuck_ids), "every stuck body started before failing"
    assert result.tasks["quick"].status == TaskStatus.COMPLETED, result.tasks["quick"].error
    assert quick_ran.is_set()
    # 3 waves of 0.2s timeouts, then quick: far less than the 2.5s the stuck bodies take.
    assert elapsed < 2.0, f"took {elapsed:.2f}s: new tasks waited for stuck threads"


def test_timeout_is_retried_even_outside_retry_on(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    """DESIGN.md §4: a timeout counts as a retryable failure, whatever retry_on lists."""
    policy = RetryPolicy(
        max_attempts=2, initial_delay=0.01, jitter=False, retry_on=(ConnectionError,)
    )
    wf_name = name("timeout_retry_on")

    @workflow(name=wf_name)
    class TimeoutRetryOn:
        @task(timeout=0.2, retry=policy)
        async def slow_first(context: Context) -> None:
            if _attempt() == 1:
                await asyncio.sleep(10)
            context.insert("attempt", _attempt())

    result = runner.execute(wf_name, timeout=20)

    assert result.status == "completed"
    assert result.tasks["slow_first"].attempts == 2
    assert result.final_context == {"attempt": 2}


def test_an_async_task_that_blocks_its_loop_fails_at_its_timeout(
    runner: DefaultRunner, name: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """An ``async def`` body that calls a blocking function holds the loop of async tasks, so
    its own timeout cannot fire there: the engine fails it at its timeout (as a def task
    would be), says it blocked the loop, and the other async tasks carry on."""
    wf_name = name("blocks_loop")

    @workflow(name=wf_name)
    class BlocksLoop:
        @task(timeout=1.0)
        async def blocker(context: Context) -> None:
            time.sleep(3)  # a blocking call in an async def: the mistake under test

        @task(timeout=10.0)
        async def bystander(context: Context) -> None:
            await asyncio.sleep(0.3)
            context.insert("bystander", True)

    result = runner.execute(wf_name, timeout=30)
    blocker = result.tasks["blocker"]
    assert blocker.status == TaskStatus.FAILED
    assert "timed out after 1s" in (blocker.error or "")
    assert "blocked the event loop" in (blocker.error or "")
    assert blocker.started_at is not None and blocker.finished_at is not None
    took = (blocker.finished_at - blocker.started_at).total_seconds()
    assert took < 2.5, f"a 1 s timeout took {took:.2f}s"
    assert result.tasks["bystander"].status == TaskStatus.COMPLETED
    assert any("blocked the event loop" in r.getMessage() for r in caplog.records)
