"""A failed run's error names the failed task once (issue 9, item 24): a task's own error that
already starts with "task 'a'" is not prefixed with "task 'a' failed: " again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from cloacina import Context, DefaultRunner, TaskError, task, workflow

pytestmark = pytest.mark.timeout(60)


def test_a_timed_out_task_is_named_once_in_the_run_error(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("stutter")

    @workflow(name=wf_name)
    class Stutter:
        @task(id="slow", timeout=0.2)
        async def slow(context: Context) -> None:
            await asyncio.sleep(10)

    result = runner.execute(wf_name, timeout=20)
    assert result.status == "failed"
    assert result.tasks["slow"].error == "task 'slow' timed out after 0.2s (attempt 1)"
    assert result.error == "task 'slow' timed out after 0.2s (attempt 1)"


def test_an_error_that_does_not_name_the_task_is_prefixed(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("prefixed")

    @workflow(name=wf_name)
    class Prefixed:
        @task(id="boom")
        def boom(context: Context) -> None:
            raise TaskError("task 'boomer' is another task")  # starts alike, is not the same

    result = runner.execute(wf_name, timeout=20)
    assert result.error == "task 'boom' failed: task 'boomer' is another task"
