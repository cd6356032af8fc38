"""Retry delays read the runner's clock: with a FakeClock a delayed retry waits for the
clock, not for real time (DESIGN.md §10, "every time-based decision reads this clock")."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cloacina import Context, DefaultRunner, RetryPolicy, TaskStatus, task, workflow
from cloacina.testing import FakeClock


def test_a_delayed_retry_waits_for_the_fake_clock(
    db_url: str, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    clock = FakeClock(datetime(2026, 3, 29, 0, 0, tzinfo=UTC))
    calls: list[float] = []
    wf_name = name("hour_retry")
    hourly = RetryPolicy(max_attempts=2, initial_delay=3600, max_delay=3600, jitter=False)

    @workflow(name=wf_name)
    class HourRetry:
        @task(retry=hourly)
        def flaky(context: Context) -> None:
            calls.append(clock.now())
            if len(calls) == 1:
                raise ConnectionError("transient")

    runner = DefaultRunner(db_url, clock=clock, poll_interval=0.05, shutdown_grace=5.0)
    try:
        eid = runner.schedule_workflow(wf_name)
        until(lambda: len(calls) == 1, what="the first attempt")
        # Real time passes, the fake clock does not: the retry must not run.
        time.sleep(0.5)
        assert len(calls) == 1
        clock.advance(timedelta(minutes=59))
        time.sleep(0.3)
        assert len(calls) == 1, "a retry ran before its delay on the runner's clock"
        clock.advance(timedelta(minutes=1))
        result = runner.wait(eid, timeout=10)
        assert result.status == "completed"
        assert calls[1] - calls[0] == 3600.0
        tasks = runner.get_execution(eid)
        assert tasks.status == "completed"
        rows = runner.store.get_tasks(eid)
        assert rows[0].status == TaskStatus.COMPLETED
        assert rows[0].attempt == 2
    finally:
        runner.shutdown()


def test_a_retried_attempt_is_recorded_on_the_runner_clock(
    db_url: str, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    """A failed attempt that is retried ends when the engine says it failed (the clock that
    stamped its start), not at the database's clock: its record never ends before it began,
    and the next attempt starts with no finish time."""
    start = datetime(2031, 1, 1, 0, 0, tzinfo=UTC)
    clock = FakeClock(start)
    calls: list[int] = []
    wf_name = name("stamped_retry")
    quick = RetryPolicy(max_attempts=3, initial_delay=0.0, jitter=False)

    @workflow(name=wf_name)
    class StampedRetry:
        @task(retry=quick)
        def flaky(context: Context) -> None:
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionError("transient")

    runner = DefaultRunner(db_url, clock=clock, poll_interval=0.05, shutdown_grace=5.0)
    try:
        result = runner.execute(wf_name, timeout=20)
        assert result.status == "completed", result.error
        attempts = [a for a in runner.get_attempts(result.execution_id) if a.task_id == "flaky"]
        assert [a.attempt for a in attempts] == [1, 2, 3]
        for a in attempts:
            assert a.started_at is not None and a.finished_at is not None
            # Every stamp is the fake clock's (2031), none the database's (today).
            assert a.started_at == start and a.finished_at == start, a
    finally:
        runner.shutdown()
