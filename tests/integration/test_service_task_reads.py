"""Reads of one task of a run (what a task's panel shows), on SQLite and PostgreSQL: its
row, its attempts and its dependencies, without reading the rest of the run; and a run's
summary with its input, without its tasks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cloacina import Context, DefaultRunner, RetryPolicy, task, workflow
from cloacina.errors import ExecutionNotFoundError, TaskNotFoundError


def test_one_task_its_attempts_and_its_dependencies(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    flow = name("task_reads")
    tries: list[int] = []

    @workflow(name=flow)
    class reads_flow:
        @task()
        def first(context: Context) -> None:
            pass

        @task(dependencies=["first"], retry=RetryPolicy(max_attempts=3, initial_delay=0.01))
        def flaky(context: Context) -> None:
            tries.append(1)
            if len(tries) < 3:
                raise RuntimeError(f"try {len(tries)} fails")

        @task(dependencies=["first", "flaky"])
        def last(context: Context) -> None:
            pass

    result = runner.execute(flow, {"given": 1})
    assert result.status == "completed"
    eid = result.execution_id

    flaky = runner.get_task(eid, "flaky")
    assert (flaky.task_id, flaky.status, flaky.attempts) == ("flaky", "completed", 3)
    attempts = runner.get_attempts(eid, "flaky")
    assert [(a.task_id, a.attempt, a.outcome) for a in attempts] == [
        ("flaky", 1, "failed"),
        ("flaky", 2, "failed"),
        ("flaky", 3, "completed"),
    ]
    assert attempts == [a for a in runner.get_attempts(eid) if a.task_id == "flaky"]
    assert runner.get_run_graph(eid, "last") == {"last": ["first", "flaky"]}
    assert runner.get_run_graph(eid, "nope") == {}

    # The run page's read: the three reads above, the task rows read once.
    assert runner.get_run_view(eid) == (
        runner.get_execution(eid),
        runner.get_run_graph(eid),
        runner.get_attempts(eid),
    )

    summary = runner.get_execution_summary(eid)
    assert summary.status == "completed" and summary.tasks == {}
    assert (summary.tasks_total, summary.tasks_done) == (3, 3)
    assert summary.input_context == {"given": 1}

    with pytest.raises(TaskNotFoundError, match="has no task 'nope'"):
        runner.get_task(eid, "nope")
    with pytest.raises(ExecutionNotFoundError):
        runner.get_task("no-such-run", "flaky")
    with pytest.raises(ExecutionNotFoundError):
        runner.get_execution_summary("no-such-run")
    with pytest.raises(ExecutionNotFoundError):
        runner.get_run_view("no-such-run")


def test_one_instance_of_a_mapped_task(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    flow = name("instance_reads")

    @workflow(name=flow)
    class map_flow:
        @task()
        def make(context: Context) -> None:
            context.insert("items", ["a", "bb", "ccc"])

        @task(dependencies=["make"], map_over="items")
        def size(context: Context) -> int:
            return len(context["item"])

    eid = runner.execute(flow, {}).execution_id
    one = runner.get_task(eid, "size[1]")  # an instance, read by its own id
    assert (one.task_id, one.status, one.attempts) == ("size[1]", "completed", 1)
    assert [a.outcome for a in runner.get_attempts(eid, "size[1]")] == ["completed"]
    assert runner.get_instance_result(eid, "size[2]") == 3
    assert runner.get_instance_result(eid, "size[9]") is None
    mapped = runner.get_task(eid, "size")
    assert mapped.instances is not None and mapped.instances.counts == {"completed": 3}
    assert "size[1]" not in runner.get_execution(eid).tasks  # instances are not run tasks
