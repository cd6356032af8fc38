"""Task bodies that misbehave must not break the runner or the bookkeeping of their run."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable

import pytest

from cloacina import Context, DefaultRunner, TaskStatus, task, workflow
from cloacina.errors import ContextKeyError
from cloacina.model.workflow import WorkflowCatalog

pytestmark = pytest.mark.timeout(60)


def test_async_task_raising_cancelled_error_fails_once(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    calls: list[int] = []
    wf_name = name("self_cancel")

    @workflow(name=wf_name)
    class SelfCancel:
        @task
        async def self_cancel(context: Context) -> None:
            calls.append(1)
            raise asyncio.CancelledError()  # e.g. an awaited inner task was cancelled

        @task(dependencies=[self_cancel])
        def after(context: Context) -> None:
            context.insert("after", True)

    result = runner.execute(wf_name, timeout=10)

    assert result.status == "failed"
    assert calls == [1], f"the body ran {len(calls)} times"
    failed = result.tasks["self_cancel"]
    assert failed.status == TaskStatus.FAILED
    assert failed.recoveries == 0
    assert "CancelledError" in (failed.error or "")
    assert result.tasks["after"].status == TaskStatus.SKIPPED


def test_async_task_calling_sys_exit_fails_task_not_runner(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("async_exit")
    ok_name = name("after_exit")

    @workflow(name=wf_name)
    class AsyncExit:
        @task
        async def exits(context: Context) -> None:
            sys.exit(3)

    @workflow(name=ok_name)
    class AfterExit:
        @task
        def fine(context: Context) -> None:
            context.insert("fine", True)

    result = runner.wait(runner.schedule_workflow(wf_name), timeout=2)

    assert result.status == "failed"
    assert result.tasks["exits"].status == TaskStatus.FAILED
    assert "SystemExit" in (result.tasks["exits"].error or "")
    # The runner still works afterwards.
    assert runner.execute(ok_name, timeout=5).status == "completed"


def test_sync_task_calling_sys_exit_fails_task_not_runner(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("sync_exit")
    ok_name = name("after_sync_exit")

    @workflow(name=wf_name)
    class SyncExit:
        @task
        def exits(context: Context) -> None:
            sys.exit(3)

    @workflow(name=ok_name)
    class AfterSyncExit:
        @task
        def fine(context: Context) -> None:
            context.insert("fine", True)

    result = runner.execute(wf_name, timeout=5)

    assert result.status == "failed"
    assert result.tasks["exits"].status == TaskStatus.FAILED
    assert "SystemExit" in (result.tasks["exits"].error or "")
    assert runner.execute(ok_name, timeout=5).status == "completed"


def test_context_misuse_fails_the_task_with_a_clear_error(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("misuse")

    @workflow(name=wf_name)
    class Misuse:
        @task
        def first(context: Context) -> None:
            context.insert("key", 1)

        @task(dependencies=[first])
        def insert_twice(context: Context) -> None:
            context.insert("key", 2)

        @task(dependencies=[first])
        def missing_key(context: Context) -> None:
            context["nope"]

    result = runner.execute(wf_name, timeout=5)

    assert result.status == "failed"
    assert "'key' already exists" in (result.tasks["insert_twice"].error or "")
    assert "'nope'" in (result.tasks["missing_key"].error or "")
    assert issubclass(ContextKeyError, KeyError)


def test_cancel_from_another_runner_discards_running_task(
    make_runner: Callable[..., DefaultRunner], name: Callable[[str], str]
) -> None:
    """The runner that runs the task is not told of the cancel; the claim fence must still
    keep its completion out and stop the dependents."""
    started = threading.Event()
    release = threading.Event()
    ran: list[str] = []
    wf_name = name("remote_cancel")

    @workflow(name=wf_name)
    class RemoteCancel:
        @task
        def first(context: Context) -> None:
            started.set()
            release.wait(10)
            ran.append("first")
            context.insert("first", True)

        @task(dependencies=[first])
        def second(context: Context) -> None:
            ran.append("second")

    worker = make_runner()
    controller = make_runner(workflows=WorkflowCatalog())  # it cannot run the task itself
    eid = worker.schedule_workflow(wf_name)
    assert started.wait(10)
    controller.cancel(eid)
    release.set()

    result = controller.wait(eid, timeout=5)
    assert result.status == "cancelled"
    # Let the worker try to record the completion and claim the dependent.
    time.sleep(0.4)
    result = worker.get_execution(eid)
    assert result.status == "cancelled"
    assert ran == ["first"]
    assert result.tasks["first"].status == TaskStatus.SKIPPED
    assert result.tasks["second"].status == TaskStatus.SKIPPED
    assert worker.store.get_outputs(eid, ["first"]) == {}
    assert "task_completed" not in [e.event for e in worker.store.get_events(eid)]


def test_an_async_task_exiting_leaves_the_other_async_tasks_running(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    """asyncio lets SystemExit out of a task's step and out of the loop that runs it: an
    async body calling sys.exit (with or without a timeout) fails its own task only, and
    the async bodies running beside it, and those started after it, still complete."""
    wf_name = name("exit_beside")

    @workflow(name=wf_name)
    class ExitBeside:
        @task(timeout=5)
        async def exits(context: Context) -> None:
            await asyncio.sleep(0.05)
            sys.exit(4)

        @task
        async def beside(context: Context) -> None:
            await asyncio.sleep(0.3)
            context.insert("beside", True)

        @task(dependencies=["exits"], trigger_rule="all_done")
        async def after(context: Context) -> None:
            await asyncio.sleep(0.01)
            context.insert("after", True)

    result = runner.execute(wf_name, timeout=15)
    assert result.tasks["exits"].status == TaskStatus.FAILED
    assert "SystemExit" in (result.tasks["exits"].error or "")
    assert result.tasks["beside"].status == TaskStatus.COMPLETED
    assert result.tasks["after"].status == TaskStatus.COMPLETED
    assert result.final_context.get("after") is True
