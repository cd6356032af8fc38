"""Sub-workflows (DESIGN §11, ``subworkflow(...)``) on SQLite and PostgreSQL: the child's
final context flows to the parent's dependents; a child's failure fails the parent task
(its retry policy starts a new child per attempt); three deep with a cancel from the top;
pause and resume reach the children; children listed by ``get_execution`` and ``executions
show`` (the CLI in a subprocess); recursion stopped by the depth limit at run time; 8
sub-workflows in parallel on 2 slots (no slot waits for a child)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloacina import (
    Context,
    DefaultRunner,
    RetryPolicy,
    TaskError,
    Workflow,
    subworkflow,
    task,
    workflow,
)
from cloacina.errors import InvalidStateError, RequestError
from cloacina.model.subworkflow import MAX_DEPTH

pytestmark = pytest.mark.timeout(120)

RunnerFactory = Callable[..., DefaultRunner]
Until = Callable[..., None]
FAST_RETRY = RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False)


def _child_of(runner: DefaultRunner, execution_id: str, until: Until) -> str:
    """The id of a run's first child run, once it exists."""
    until(lambda: bool(runner.get_execution(execution_id).children), 20, "a child run")
    return runner.get_execution(execution_id).children[0]


def test_child_final_context_is_the_task_output_and_flows_to_dependents(
    runner: DefaultRunner, name: Callable[[str], str], events: Callable[..., list[str]]
) -> None:
    child_name, parent_name = name("child"), name("parent")

    @workflow(name=child_name)
    class _child:
        @task
        def double(context: Context) -> None:
            context.insert("doubled", context["x"] * 2)

        @task(dependencies=[double])
        def label(context: Context) -> None:
            context.insert("label", f"x={context['x']}")

    @workflow(name=parent_name)
    class _parent:
        @task
        def prepare(context: Context) -> None:
            context.insert("x", 21)

        etl = subworkflow(id="etl", workflow=child_name, dependencies=[prepare])

        @task(dependencies=[etl])
        def report(context: Context) -> None:
            context.insert("report", f"{context['label']}: {context['doubled']}")

    result = runner.execute(parent_name, {"run": "one"}, timeout=30)
    assert result.status == "completed", result.error
    assert result.final_context == {
        "run": "one",
        "x": 21,
        "doubled": 42,
        "label": "x=21",
        "report": "x=21: 42",
    }
    assert result.tasks["etl"].status == "completed"
    assert result.tasks["etl"].attempts == 1
    assert runner.get_task_output(result.execution_id, "etl") == {
        "run": "one",
        "x": 21,
        "doubled": 42,
        "label": "x=21",
    }
    assert len(result.children) == 1
    child = runner.get_execution(result.children[0])
    assert child.workflow_name == child_name
    assert child.status == "completed"
    assert child.input_context == {"run": "one", "x": 21}
    assert (child.parent_execution_id, child.parent_task_id) == (result.execution_id, "etl")
    assert child.children == []
    assert result.parent_execution_id is None
    assert "subworkflow_started" in events(runner, result.execution_id, "etl")
    # The task's attempt lasted as long as its child, not as long as its settling claim.
    etl = result.tasks["etl"]
    assert etl.started_at is not None and child.finished_at is not None
    assert etl.started_at <= child.finished_at


def test_a_failed_child_fails_the_task_and_each_retry_starts_a_new_child(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    child_name, parent_name, plain_name = name("child"), name("parent"), name("plain")
    calls: list[int] = []

    @workflow(name=child_name)
    class _child:
        @task
        def boom(context: Context) -> None:
            calls.append(1)
            raise TaskError("the warehouse is closed")

    @workflow(name=parent_name)
    class _parent:
        etl = subworkflow(id="etl", workflow=child_name, retry=FAST_RETRY)

        @task(dependencies=[etl])
        def after(context: Context) -> None:
            raise AssertionError("must not run")

    result = runner.execute(parent_name, timeout=30)
    assert result.status == "failed"
    etl = result.tasks["etl"]
    assert etl.status == "failed"
    assert etl.attempts == 2  # the policy's two attempts, a child each
    assert etl.error is not None and "the warehouse is closed" in etl.error
    assert child_name in etl.error
    assert result.error is not None and "the warehouse is closed" in result.error
    assert result.tasks["after"].status == "skipped"
    assert len(result.children) == 2 and len(calls) == 2
    assert etl.error is not None and result.children[1] in etl.error  # the last child named
    for child_id in result.children:
        child = runner.get_execution(child_id)
        assert child.status == "failed"
        assert child.parent_task_id == "etl"

    @workflow(name=plain_name)
    class _plain:  # no retry policy: one child, one attempt
        etl = subworkflow(id="etl", workflow=child_name)

    result = runner.execute(plain_name, timeout=30)
    assert result.status == "failed"
    assert result.tasks["etl"].attempts == 1
    assert len(result.children) == 1


def test_three_deep_with_a_cancel_from_the_top(
    runner: DefaultRunner, name: Callable[[str], str], until: Until
) -> None:
    bottom_name, mid_name, top_name = name("bottom"), name("mid"), name("top")
    started = threading.Event()
    release = threading.Event()

    @workflow(name=bottom_name)
    class _bottom:
        @task
        def block(context: Context) -> None:
            started.set()
            release.wait(30)

        @task(dependencies=[block])
        def never(context: Context) -> None:
            raise AssertionError("must not run")

    @workflow(name=mid_name)
    class _mid:
        down = subworkflow(id="down", workflow=bottom_name)

    @workflow(name=top_name)
    class _top:
        down = subworkflow(id="down", workflow=mid_name)

        @task(dependencies=[down])
        def after(context: Context) -> None:
            raise AssertionError("must not run")

    top = runner.schedule_workflow(top_name)
    mid = _child_of(runner, top, until)
    bottom = _child_of(runner, mid, until)
    assert started.wait(20)
    try:
        runner.cancel(top, reason="operator said stop")
    finally:
        release.set()
    for eid in (top, mid, bottom):
        assert runner.wait(eid, timeout=20).status == "cancelled"
    top_run, mid_run, bottom_run = (runner.get_execution(e) for e in (top, mid, bottom))
    assert top_run.error == "operator said stop"
    assert mid_run.error is not None and top in mid_run.error
    assert bottom_run.error is not None and top in bottom_run.error
    assert top_run.tasks["down"].status == "skipped"
    assert top_run.tasks["after"].status == "skipped"
    assert mid_run.tasks["down"].status == "skipped"
    assert bottom_run.tasks["block"].status == "skipped"
    assert bottom_run.tasks["never"].status == "skipped"
    time.sleep(0.3)  # nothing wakes up later and changes a verdict
    assert [runner.get_execution(e).status for e in (top, mid, bottom)] == ["cancelled"] * 3


def test_a_child_cancelled_alone_fails_its_parent_task(
    runner: DefaultRunner, name: Callable[[str], str], until: Until
) -> None:
    child_name, parent_name = name("child"), name("parent")
    release = threading.Event()

    @workflow(name=child_name)
    class _child:
        @task
        def block(context: Context) -> None:
            release.wait(30)

    @workflow(name=parent_name)
    class _parent:
        etl = subworkflow(id="etl", workflow=child_name, retry=FAST_RETRY)

    parent = runner.schedule_workflow(parent_name)
    child = _child_of(runner, parent, until)
    try:
        runner.cancel(child)
    finally:
        release.set()
    result = runner.wait(parent, timeout=20)
    assert result.status == "failed"
    etl = result.tasks["etl"]
    assert etl.status == "failed"
    assert etl.attempts == 1  # a cancel is not retried
    assert etl.error is not None and "cancelled" in etl.error
    assert result.children == [child]


def test_pause_and_resume_reach_the_children(
    runner: DefaultRunner, name: Callable[[str], str], until: Until
) -> None:
    child_name, parent_name = name("child"), name("parent")
    started = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    @workflow(name=child_name)
    class _child:
        @task
        def first(context: Context) -> None:
            started.set()
            release.wait(30)
            ran.append("first")

        @task(dependencies=[first])
        def second(context: Context) -> None:
            ran.append("second")

    @workflow(name=parent_name)
    class _parent:
        etl = subworkflow(id="etl", workflow=child_name)

        @task(dependencies=[etl])
        def after(context: Context) -> None:
            ran.append("after")

    parent = runner.schedule_workflow(parent_name)
    child = _child_of(runner, parent, until)
    assert started.wait(20)
    runner.pause(parent)
    assert runner.get_execution(child).status == "paused"
    release.set()  # the running task finishes; the next one must wait for the resume
    until(lambda: ran == ["first"], 10, "the running task to finish")
    time.sleep(0.5)
    assert ran == ["first"]
    assert runner.get_execution(child).status == "paused"
    assert runner.get_execution(parent).status == "paused"
    runner.resume(parent)
    assert runner.get_execution(child).status in ("running", "completed")
    result = runner.wait(parent, timeout=20)
    assert result.status == "completed", result.error
    assert ran == ["first", "second", "after"]
    assert runner.get_execution(child).status == "completed"


def test_recursion_is_stopped_at_run_time_by_the_depth_limit(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    # Built without the decorator, so nothing refused it at definition time.
    loop_name = name("loop")
    loop = Workflow.from_tasks(loop_name, [subworkflow(id="again", workflow=loop_name)])
    result = runner.execute(loop, timeout=60)
    assert result.status == "failed"
    assert result.error is not None and f"depth limit of {MAX_DEPTH}" in result.error
    chain = [result]
    while chain[-1].children:
        assert len(chain[-1].children) == 1
        chain.append(runner.get_execution(chain[-1].children[0]))
    assert len(chain) == MAX_DEPTH + 1  # depth 0 to 10; depth 10 could not start an 11th
    assert [run.status for run in chain] == ["failed"] * len(chain)
    deepest = chain[-1].tasks["again"]
    assert deepest.error is not None and f"depth limit of {MAX_DEPTH}" in deepest.error
    assert deepest.attempts == 1


def test_eight_parallel_subworkflows_on_two_slots_complete(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    child_name, parent_name = name("child"), name("parent")

    @workflow(name=child_name)
    class _child:
        @task
        def work(context: Context) -> None:
            time.sleep(0.02)
            context.insert("done", context["branch"])

    def branch(i: int) -> Any:
        @task(id=f"set{i}")
        def setter(context: Context) -> None:
            context.set("branch", i)

        return setter, subworkflow(id=f"sub{i}", workflow=child_name, dependencies=[setter])

    tasks = [t for i in range(8) for t in branch(i)]

    @task(dependencies=[f"sub{i}" for i in range(8)])
    def gather(context: Context) -> None:
        context.insert("gathered", True)

    flow = Workflow.from_tasks(parent_name, [*tasks, gather])
    runner = make_runner(max_concurrent_tasks=2)
    result = runner.execute(flow, timeout=60)
    assert result.status == "completed", result.error
    assert len(result.children) == 8
    assert result.final_context["gathered"] is True
    outputs = {
        i: (runner.get_task_output(result.execution_id, f"sub{i}") or {}).get("done")
        for i in range(8)
    }
    assert outputs == {i: i for i in range(8)}


def test_children_listed_by_executions_show(
    runner: DefaultRunner, db_url: str, name: Callable[[str], str]
) -> None:
    child_name, parent_name = name("child"), name("parent")

    @workflow(name=child_name)
    class _child:
        @task
        def step(context: Context) -> None:
            context.insert("stepped", True)

    @workflow(name=parent_name)
    class _parent:
        one = subworkflow(id="one", workflow=child_name)
        two = subworkflow(id="two", workflow=child_name)

    result = runner.execute(parent_name, timeout=30)
    assert result.status == "completed", result.error
    assert len(result.children) == 2

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cloacina", "executions", "show", *args, "--db", db_url],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    text = cli(result.execution_id)
    assert "Child runs" in text
    for child_id in result.children:
        assert child_id in text
    doc = json.loads(cli(result.execution_id, "--json"))
    assert doc["children"] == result.children
    child_text = cli(result.children[0])
    assert result.execution_id in child_text and "parent" in child_text
    child_doc = json.loads(cli(result.children[0], "--json"))
    assert child_doc["parent_execution_id"] == result.execution_id
    assert child_doc["parent_task_id"] in ("one", "two")


PACKAGED_FLOWS = """
from cloacina import Context, packaged_workflow, subworkflow, task


@packaged_workflow(name="CHILD", package="PKG")
class child:
    @task
    def double(context: Context) -> None:
        context.insert("doubled", context["x"] * 2)


@packaged_workflow(name="PARENT", package="PKG")
class parent:
    @task
    def prepare(context: Context) -> None:
        context.insert("x", 21)

    etl = subworkflow(id="etl", workflow="CHILD", dependencies=[prepare])

    @task(dependencies=[etl])
    def report(context: Context) -> None:
        context.insert("report", context["doubled"] + 1)
"""


def test_a_packaged_workflow_runs_a_packaged_child(
    tmp_path: Path,
    make_package: Callable[..., bytes],
    make_package_runner: RunnerFactory,
    name: Callable[[str], str],
) -> None:
    package = f"sw_{name('p')[-8:]}"
    child_name, parent_name = f"{package}_child", f"{package}_parent"
    body = PACKAGED_FLOWS.replace("CHILD", child_name).replace("PARENT", parent_name)
    data = make_package(
        tmp_path,
        package,
        "1.0",
        {f"{package}/__init__.py": "", f"{package}/flows.py": body.replace("PKG", package)},
        [f"{package}.flows"],
    )
    runner = make_package_runner()
    runner.register_workflow(data)
    result = runner.execute(parent_name, timeout=90)
    assert result.status == "completed", (result.error, result.tasks)
    assert result.final_context == {"x": 21, "doubled": 42, "report": 43}
    (child_id,) = result.children
    child = runner.get_execution(child_id)
    assert (child.workflow_name, child.package) == (child_name, package)
    assert child.parent_task_id == "etl"


def test_the_engines_child_keys_are_refused_as_idempotency_keys(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    flow = name("keyed")

    @workflow(name=flow)
    class _flow:
        @task
        def one(context: Context) -> None: ...

    with pytest.raises(RequestError, match="engine's own"):
        runner.schedule_workflow(flow, idempotency_key="cloacina-subworkflow:1:1")
    assert runner.list_executions() == []


def test_a_rerun_of_a_failed_subworkflow_task_starts_a_new_child(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    child_name, parent_name = name("child"), name("parent")
    broken = [True]

    @workflow(name=child_name)
    class _child:
        @task
        def load(context: Context) -> None:
            if broken[0]:
                raise TaskError("the source is down")
            context.insert("loaded", 1)

    @workflow(name=parent_name)
    class _parent:
        etl = subworkflow(id="etl", workflow=child_name)

        @task(dependencies=[etl])
        def after(context: Context) -> None:
            context.insert("after", context["loaded"] + 1)

    first = runner.execute(parent_name, timeout=30)
    assert first.status == "failed"
    broken[0] = False
    runner.rerun(first.execution_id)
    result = runner.wait(first.execution_id, timeout=30)
    assert result.status == "completed", result.error
    assert result.final_context == {"loaded": 1, "after": 2}
    assert len(result.children) == 2 and result.children[0] == first.children[0]
    assert [runner.get_execution(c).status for c in result.children] == ["failed", "completed"]
    attempts = runner.get_attempts(result.execution_id, "etl")
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "failed"), (2, "completed")]


def test_cancels_racing_children_that_end_never_deadlock(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    """A cancel locks a family of runs while the engine ends children and settles their
    parent tasks: both take runs in one order, so the cancel never fails on a deadlock,
    and every child of a cancelled run ends."""
    child_name, parent_name = name("child"), name("parent")
    rng = random.Random(13)

    @workflow(name=child_name)
    class _child:
        @task
        def first(context: Context) -> None:
            time.sleep(rng.random() * 0.02)

        @task(dependencies=[first])
        def second(context: Context) -> None:
            time.sleep(rng.random() * 0.02)

    flow = Workflow.from_tasks(
        parent_name, [subworkflow(id=f"sub{i}", workflow=child_name) for i in range(6)]
    )
    runner = make_runner(max_concurrent_tasks=4)
    cancelled = 0
    for _ in range(25):
        eid = runner.schedule_workflow(flow)
        time.sleep(rng.random() * 0.06)
        try:
            runner.cancel(eid)
            cancelled += 1
        except InvalidStateError:
            pass  # it completed first
        result = runner.wait(eid, timeout=30)
        for child_id in result.children:
            status = runner.wait(child_id, timeout=30).status
            assert status in ("cancelled", "completed"), status
            if result.status == "cancelled" and status == "cancelled":
                assert runner.get_execution(child_id).error is not None
    assert cancelled > 0
