"""Surgical reruns (DESIGN §11) on SQLite and PostgreSQL: the failed part of a run again,
upstream outputs kept and not run again, the skip cascade undone, attempts continued and
kept; with an edited context, onto a new version, in bulk, against a late completion of
the old attempt; bad inputs refused with nothing changed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from cloacina import Context, DefaultRunner, TaskError, task, workflow
from cloacina.errors import (
    ExecutionNotFoundError,
    InvalidStateError,
    TaskNotFoundError,
    WorkflowNotFoundError,
)
from cloacina.model.workflow import workflow_of

pytestmark = pytest.mark.timeout(90)


def _statuses(result: Any) -> dict[str, str]:
    return {k: str(t.status) for k, t in result.tasks.items()}


def _diamond(name: Callable[[str], str], calls: dict[str, int], broken: list[bool]) -> str:
    """top -> left, right -> bottom -> tail; ``right`` fails while ``broken[0]``."""

    def hit(task_id: str) -> None:
        calls[task_id] = calls.get(task_id, 0) + 1

    @workflow(name=name("diamond"))
    class diamond:
        @task()
        def top(context: Context) -> None:
            hit("top")
            context.insert("top", 1)

        @task(dependencies=[top])
        def left(context: Context) -> None:
            hit("left")
            context.insert("left", context["top"] + 1)

        @task(dependencies=[top])
        def right(context: Context) -> None:
            hit("right")
            if broken[0]:
                raise TaskError("right broke", retryable=False)
            context.insert("right", context.get("factor", 1) * 10)

        @task(dependencies=[left, right])
        def bottom(context: Context) -> None:
            hit("bottom")
            context.insert("bottom", context["left"] + context["right"])

        @task(dependencies=[bottom])
        def tail(context: Context) -> None:
            hit("tail")
            context.insert("tail", True)

    return workflow_of(diamond).name


def test_rerun_after_a_failure_in_the_middle_of_a_diamond(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    calls: dict[str, int] = {}
    broken = [True]
    wf = _diamond(name, calls, broken)
    first = runner.execute(wf, timeout=30)
    assert first.status == "failed"
    assert _statuses(first) == {
        "top": "completed",
        "left": "completed",
        "right": "failed",
        "bottom": "skipped",
        "tail": "skipped",
    }
    eid = first.execution_id
    broken[0] = False
    runner.rerun(eid)
    # rerun() returns once the run is running again: a wait() waits for the rerun.
    assert runner.get_execution(eid).status in ("running", "completed")
    again = runner.wait(eid, timeout=30)
    assert again.status == "completed", again.error
    assert again.error is None
    assert _statuses(again) == dict.fromkeys(
        ("top", "left", "right", "bottom", "tail"), "completed"
    )
    assert again.final_context == {"top": 1, "left": 2, "right": 10, "bottom": 12, "tail": True}
    # Upstream kept and not run again; the failed task and the skipped ones ran.
    assert calls == {"top": 1, "left": 1, "right": 2, "bottom": 1, "tail": 1}
    assert again.tasks["right"].attempts == 2  # attempt numbers continue
    history = [(a.task_id, a.attempt, a.outcome) for a in runner.get_attempts(eid)]
    assert ("right", 1, "failed") in history and ("right", 2, "completed") in history
    # Skipped without running: the verdict is kept as attempt 1, the rerun is attempt 2.
    assert ("bottom", 1, "skipped") in history and ("bottom", 2, "completed") in history
    assert again.tasks["bottom"].attempts == 2 and again.tasks["top"].attempts == 1
    events = [(e.type, e.task_id) for e in runner.get_events(eid)]
    assert ("execution_rerun", None) in events
    rerun_event = next(e for e in runner.get_events(eid) if e.type == "execution_rerun")
    detail = rerun_event.detail
    assert detail["tasks"] == ["right", "bottom", "tail"]
    assert detail["first"] == ["right"]
    assert events.index(("execution_rerun", None)) < events.index(("execution_completed", None))


def test_rerun_with_an_edited_context_and_without_downstream(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    calls: dict[str, int] = {}
    broken = [True]
    wf = _diamond(name, calls, broken)
    eid = runner.execute(wf, timeout=30).execution_id
    broken[0] = False
    runner.rerun(eid, ["right"], downstream=False, context={"factor": 7})
    again = runner.wait(eid, timeout=30)
    # Only right ran; its dependents stay skipped, so the run completes (skips are fine).
    assert calls == {"top": 1, "left": 1, "right": 2}
    assert _statuses(again)["right"] == "completed"
    assert _statuses(again)["bottom"] == "skipped"
    assert again.status == "completed"
    outputs = runner.store.get_outputs(eid, ["right"])
    assert json.loads(outputs["right"])["right"] == 70  # the context reached its input
    assert json.loads(outputs["right"])["factor"] == 7

    # Now the rest, downstream of right: bottom and tail see right's new output.
    # bottom never ran (skipped): the context reaches it all the same.
    runner.rerun(eid, ["bottom"], context={"bonus": 5})
    done = runner.wait(eid, timeout=30)
    assert done.status == "completed"
    assert done.final_context["bottom"] == 72
    assert done.final_context["bonus"] == 5
    assert calls == {"top": 1, "left": 1, "right": 2, "bottom": 1, "tail": 1}


def test_rerun_onto_a_new_version(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    wf_name = name("versioned")

    @workflow(name=wf_name)
    class v1:
        @task()
        def a(context: Context) -> None:
            context.insert("a", 1)

        @task(dependencies=[a])
        def b(context: Context) -> None:
            raise TaskError("a bug in v1", retryable=False)

    old = workflow_of(v1).version
    first = runner.execute(wf_name, timeout=30)
    assert first.status == "failed"

    @workflow(name=wf_name)
    class v2:
        @task()
        def a(context: Context) -> None:
            context.insert("a", 100)  # a new version; not run again by the rerun

        @task(dependencies=[a])
        def b(context: Context) -> None:
            context.insert("b", context["a"] + 1)  # the fix

    new = workflow_of(v2).version
    assert new != old
    runner.rerun(first.execution_id, version=new[:12])
    again = runner.wait(first.execution_id, timeout=30)
    assert again.status == "completed", again.error
    assert again.workflow_version == new
    assert again.final_context == {"a": 1, "b": 2}

    @workflow(name=wf_name)
    class v3:  # lacks b
        @task()
        def a(context: Context) -> None: ...

    runner.rerun(first.execution_id, ["b"], version=old)  # back to v1: fails again
    assert runner.wait(first.execution_id, timeout=30).status == "failed"
    before = runner.get_execution(first.execution_id)
    with pytest.raises(InvalidStateError, match="lacks task"):
        runner.rerun(first.execution_id, version=workflow_of(v3).version)
    with pytest.raises(WorkflowNotFoundError, match="no registered version"):
        runner.rerun(first.execution_id, version="0000000000")
    after = runner.get_execution(first.execution_id)
    assert (after.status, after.workflow_version, _statuses(after)) == (
        before.status,
        before.workflow_version,
        _statuses(before),
    )


def test_rerun_failed_in_bulk(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    calls: dict[str, int] = {}
    broken = [True]
    wf = _diamond(name, calls, broken)
    ids = [runner.execute(wf, {"n": i}, timeout=30).execution_id for i in range(3)]
    ok_calls: dict[str, int] = {}
    other = _diamond(name, ok_calls, [True])
    other_id = runner.execute(other, timeout=30).execution_id
    broken[0] = False
    rerun = runner.rerun_failed(workflow=wf, since=time.time() - 600)
    assert rerun == ids  # oldest first; the other workflow's run is left alone
    for eid in ids:
        assert runner.wait(eid, timeout=30).status == "completed"
    assert runner.get_execution(other_id).status == "failed"
    assert runner.rerun_failed(workflow=wf) == []  # nothing failed any more
    assert calls["top"] == 3 and calls["right"] == 6


def test_bad_reruns_are_refused_with_nothing_changed(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    import threading

    gate = threading.Event()

    @workflow(name=name("slow"))
    class slow:
        @task()
        def wait(context: Context) -> None:
            gate.wait(20)

    running = runner.schedule_workflow(workflow_of(slow).name)
    try:
        with pytest.raises(InvalidStateError, match="only a run that has ended"):
            runner.rerun(running)
    finally:
        gate.set()
    assert runner.wait(running, timeout=30).status == "completed"
    with pytest.raises(InvalidStateError, match="no failed or cancelled task"):
        runner.rerun(running)

    calls: dict[str, int] = {}
    wf = _diamond(name, calls, [True])
    eid = runner.execute(wf, timeout=30).execution_id
    before = (_statuses(runner.get_execution(eid)), len(runner.get_events(eid)))
    with pytest.raises(TaskNotFoundError, match="'nope'"):
        runner.rerun(eid, ["right", "nope"])
    with pytest.raises(ExecutionNotFoundError):
        runner.rerun("00000000-0000-0000-0000-000000000000")
    assert (_statuses(runner.get_execution(eid)), len(runner.get_events(eid))) == before
    assert runner.get_execution(eid).status == "failed"


def test_a_cancelled_run_reruns_what_the_cancel_stopped(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    import threading

    gate = threading.Event()
    hits: list[str] = []

    @workflow(name=name("stopped"))
    class stopped:
        @task()
        def first(context: Context) -> None:
            hits.append("first")
            context.insert("first", 1)

        @task(dependencies=[first])
        def second(context: Context) -> None:
            hits.append("second")
            if not gate.is_set():
                gate.wait(20)

    eid = runner.schedule_workflow(workflow_of(stopped).name)
    deadline = time.monotonic() + 20
    while "second" not in hits and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.cancel(eid)
    assert runner.wait(eid, timeout=10).status == "cancelled"
    gate.set()
    runner.rerun(eid)
    again = runner.wait(eid, timeout=30)
    assert again.status == "completed", again.error
    assert hits.count("first") == 1 and hits.count("second") == 2


def test_a_late_completion_of_the_old_attempt_is_fenced_out(
    make_runner: Callable[..., DefaultRunner], name: Callable[[str], str]
) -> None:
    """A worker still holding the old attempt's claim when the run is rerun cannot complete
    the task: the rerun cleared its claim token; the new attempt's output stands."""

    @workflow(name=name("fenced"))
    class fenced:
        @task()
        def only(context: Context) -> None:
            context.insert("who", "new attempt")

    wf = workflow_of(fenced)
    client = make_runner(execute_tasks=False)
    eid = client.schedule_workflow(wf.name)
    store = client.store
    with store.write() as tx:  # an old worker claims it ...
        (old,) = tx.claim_ready(1, [(wf.name, wf.version)], "old-worker", time.time())
    client.cancel(eid)  # ... the run is stopped meanwhile, and rerun
    client.rerun(eid)
    assert client.get_execution(eid).status == "running"
    with store.write() as tx:  # the old worker finishes late
        assert not tx.complete_task(old, '{"who": "old attempt"}', time.time())
    worker = make_runner()
    result = worker.wait(eid, timeout=30)
    assert result.status == "completed", result.error
    assert result.final_context == {"who": "new attempt"}
    assert result.tasks["only"].attempts == 2


def test_a_process_without_the_workflows_code_reruns_through_the_workers(
    make_runner: Callable[..., DefaultRunner], name: Callable[[str], str]
) -> None:
    """A CLI on the database does not hold an embedded workflow's code: the tasks whose
    dependencies all completed are made ready for the workers (which hold it); one with a
    failed dependency is refused, nothing changed."""
    from cloacina.model.workflow import WorkflowCatalog

    calls: dict[str, int] = {}
    broken = [True]
    wf = _diamond(name, calls, broken)
    worker = make_runner()
    eid = worker.execute(wf, timeout=30).execution_id
    stranger = make_runner(execute_tasks=False, workflows=WorkflowCatalog())
    with pytest.raises(InvalidStateError, match="does not hold the workflow's code"):
        stranger.rerun(eid, ["bottom"])  # right (its dependency) failed and is not rerun
    assert stranger.get_execution(eid).status == "failed"
    broken[0] = False
    stranger.rerun(eid)
    again = worker.wait(eid, timeout=30)
    assert again.status == "completed", again.error
    assert calls == {"top": 1, "left": 1, "right": 2, "bottom": 1, "tail": 1}


def test_a_rerun_task_gets_its_retries_again(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    """A task that used up its 2 attempts is rerun: attempt 3 fails and is retried (a fresh
    budget), attempt 4 completes; every attempt is on record."""
    from cloacina import RetryPolicy

    failures = [3]

    @workflow(name=name("retried"))
    class retried:
        @task(retry=RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False))
        def flaky(context: Context) -> None:
            if failures[0] > 0:
                failures[0] -= 1
                raise RuntimeError("not yet")
            context.insert("ok", True)

    first = runner.execute(workflow_of(retried).name, timeout=30)
    assert first.status == "failed" and first.tasks["flaky"].attempts == 2
    runner.rerun(first.execution_id)
    again = runner.wait(first.execution_id, timeout=30)
    assert again.status == "completed", again.error
    assert again.tasks["flaky"].attempts == 4
    history = [(a.attempt, a.outcome) for a in runner.get_attempts(first.execution_id)]
    assert history == [(1, "failed"), (2, "failed"), (3, "failed"), (4, "completed")]
