"""``runner.workflow_stats`` on SQLite and PostgreSQL: a workflow where one branch sleeps
longer, so its critical path is known; failures and retries; bounds and unknown names."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from cloacina import Context, RetryPolicy, TaskError, task, workflow
from cloacina.errors import RequestError, WorkflowNotFoundError

from .conftest import RunnerFactory

# Far beyond the quick branch (0.01 s) even when a loaded machine delays a thread by a
# few hundred milliseconds, as CI beside a browser has.
SLOW = 0.8


def test_stats_name_the_slow_branch_as_the_critical_path(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    wf_name = name("stats_branches")

    @workflow(name=wf_name)
    class Branches:
        @task()
        def start(context: Context) -> None:
            context.set("n", 1)

        @task(dependencies=["start"])
        def quick(context: Context) -> None:
            time.sleep(0.01)

        @task(dependencies=["start"])
        def slow(context: Context) -> None:
            time.sleep(SLOW)

        @task(dependencies=["quick", "slow"])
        def join(context: Context) -> None:
            context.set("joined", True)

    runner = make_runner()
    for _ in range(4):
        assert runner.execute(wf_name, timeout=30).status == "completed"

    stats = runner.workflow_stats(wf_name)
    assert (stats.runs, stats.completed, stats.failed) == (4, 4, 0)
    assert stats.critical_path == ["start", "slow", "join"]
    assert stats.critical_path_runs == 4
    assert stats.critical_path_seconds is not None and stats.critical_path_seconds >= SLOW
    by_id = {t.task_id: t for t in stats.tasks}
    assert list(by_id) == ["start", "quick", "slow", "join"]
    slow, quick = by_id["slow"], by_id["quick"]
    assert slow.duration_p50 is not None and slow.duration_p50 >= SLOW
    assert quick.duration_p95 is not None and quick.duration_p95 < slow.duration_p50
    assert slow.critical_runs == 4 and quick.critical_runs == 0
    for t in stats.tasks:
        assert (t.runs, t.completed, t.attempts, t.failure_rate) == (4, 4, 4, 0.0)
        assert t.wait_p50 is not None and t.wait_p95 is not None
        assert 0 <= t.wait_p50 <= t.wait_p95 < 5
    # join waits for the slow branch, not in the queue: its wait is small.
    assert by_id["join"].wait_p95 is not None and by_id["join"].wait_p95 < SLOW
    assert stats.duration_p50 is not None and stats.duration_p50 >= SLOW
    assert stats.first_run_at is not None and stats.last_run_at is not None
    assert stats.first_run_at <= stats.last_run_at

    last_two = runner.workflow_stats(wf_name, last=2)
    assert last_two.runs == 2 and last_two.first_run_at is not None
    assert last_two.first_run_at > stats.first_run_at


def test_stats_count_failures_retries_and_skips(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    wf_name = name("stats_failing")
    calls = {"n": 0}

    @workflow(name=wf_name)
    class Failing:
        @task()
        def first(context: Context) -> None:
            context.set("x", 1)

        @task(dependencies=["first"], retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
        def shaky(context: Context) -> None:
            calls["n"] += 1
            if calls["n"] <= 3:  # run 1 fails twice (gives up); run 2 fails once, then succeeds
                raise TaskError("shaky")

        @task(dependencies=["shaky"])
        def last(context: Context) -> None:
            context.set("done", True)

    runner = make_runner()
    assert runner.execute(wf_name, timeout=30).status == "failed"
    assert runner.execute(wf_name, timeout=30).status == "completed"
    stats = runner.workflow_stats(wf_name)
    assert (stats.runs, stats.completed, stats.failed) == (2, 1, 1)
    assert stats.failure_rate == 0.5
    by_id = {t.task_id: t for t in stats.tasks}
    shaky = by_id["shaky"]
    assert (shaky.runs, shaky.completed, shaky.failed, shaky.attempts) == (2, 1, 1, 4)
    assert shaky.failure_rate == 0.5
    last = by_id["last"]
    assert (last.runs, last.completed, last.skipped, last.attempts) == (2, 1, 1, 1)
    assert last.failure_rate == 0.0


def test_stats_of_unknown_names_and_bad_bounds(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    wf_name = name("stats_known")

    @workflow(name=wf_name)
    class Known:
        @task()
        def only(context: Context) -> None:
            context.set("x", 1)

    runner = make_runner()
    empty = runner.workflow_stats(wf_name)  # known, never run
    assert (empty.runs, empty.tasks, empty.critical_path) == (0, [], [])
    assert runner.execute(wf_name, timeout=30).status == "completed"
    with pytest.raises(WorkflowNotFoundError, match=f"did you mean '{wf_name}'"):
        runner.workflow_stats(wf_name[:-1])
    for bad in (0, -1, 10_001):
        with pytest.raises(RequestError, match="last must be"):
            runner.workflow_stats(wf_name, last=bad)
