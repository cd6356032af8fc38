"""Names at the longest the decorators and the builder allow work on both backends (issue
9.5): the limits are the database's column sizes, so what is accepted at definition never
fails later on PostgreSQL with "value too long for type character varying"."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cloacina import Context, DefaultRunner, RetryPolicy, task, workflow
from cloacina.model.namespace import (
    MAX_PACKAGE_NAME,
    MAX_PACKAGE_VERSION,
    MAX_TASK_ID,
    MAX_WORKFLOW_NAME,
)

pytestmark = pytest.mark.timeout(90)


def pad(prefix: str, length: int, fill: str = "x") -> str:
    return prefix + fill * (length - len(prefix))


def test_longest_workflow_name_and_task_ids_run(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = pad(name("long_names"), MAX_WORKFLOW_NAME)
    first_id = pad("first_", MAX_TASK_ID, "a")
    second_id = pad("second_", MAX_TASK_ID, "b")
    attempts: list[int] = []

    @workflow(name=wf_name)
    class LongNames:
        @task(id=first_id, retry=RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False))
        def first(context: Context) -> None:
            attempts.append(1)
            if len(attempts) == 1:  # a retry stores events and an error under the task id
                raise ValueError("once")
            context.insert("a", 1)

        @task(id=second_id, dependencies=[first_id])
        def second(context: Context) -> None:
            context.insert("b", context["a"] + 1)

    result = runner.execute(wf_name, timeout=30)
    assert result.status == "completed", result.error
    assert result.workflow_name == wf_name
    assert set(result.tasks) == {first_id, second_id}
    assert result.final_context == {"a": 1, "b": 2}
    assert {e.task_id for e in runner.store.get_events(result.execution_id)} >= {
        first_id,
        second_id,
    }


def test_longest_package_name_and_version_register_and_run(
    tmp_path: Path,
    make_package: Callable[..., bytes],
    make_package_runner: Callable[..., DefaultRunner],
    name: Callable[[str], str],
) -> None:
    package = pad("pkg_", MAX_PACKAGE_NAME, "p")
    version = pad("1.", MAX_PACKAGE_VERSION, "0")
    wf_name = pad(name("long_pkg"), MAX_WORKFLOW_NAME)
    flow = textwrap.dedent(
        f"""
        from cloacina import Context, packaged_workflow, task

        @packaged_workflow(name="{wf_name}", package="{package}")
        class flow:
            @task
            def only(context: Context) -> None:
                context.insert("ran", True)
        """
    )
    data = make_package(
        tmp_path,
        package,
        version,
        {f"{package}/__init__.py": "", f"{package}/flows.py": flow},
        [f"{package}.flows"],
    )
    runner = make_package_runner()
    runner.register_workflow(data)
    [info] = runner.list_packages()
    assert (info.package, info.version) == (package, version)
    result = runner.execute(wf_name, timeout=60)
    assert result.status == "completed", result.error
    assert result.package == package
    assert result.final_context == {"ran": True}
