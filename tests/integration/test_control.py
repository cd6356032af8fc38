"""Cancel, pause and resume a run (DESIGN.md §4, "Status")."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from cloacina import (
    Context,
    DefaultRunner,
    ExecutionNotFoundError,
    ExecutionStatus,
    InvalidStateError,
    TaskStatus,
    task,
    workflow,
)
from cloacina.model.workflow import WorkflowCatalog

if TYPE_CHECKING:
    from .conftest import Recorder

pytestmark = pytest.mark.timeout(60)


def test_cancel_while_sync_task_runs(
    runner: DefaultRunner,
    name: Callable[[str], str],
    recorder: Recorder,
    until: Callable[..., None],
    events: Callable[..., list[str]],
) -> None:
    started = threading.Event()
    release = threading.Event()
    wf_name = name("cancel_sync")

    @workflow(name=wf_name)
    class CancelSync:
        @task
        def first(context: Context) -> None:
            recorder.hit("first")
            started.set()
            release.wait(10)
            context.insert("first", True)

        @task(dependencies=[first])
        def second(context: Context) -> None:
            recorder.hit("second")

        @task(dependencies=[second])
        def third(context: Context) -> None:
            recorder.hit("third")

    eid = runner.schedule_workflow(wf_name)
    assert started.wait(10)
    runner.cancel(eid)
    release.set()  # the body returns after the cancel; its result must be discarded

    result = runner.wait(eid, timeout=10)
    assert result.status == ExecutionStatus.CANCELLED
    time.sleep(0.3)  # give a wrongly scheduled dependent the chance to start

    result = runner.get_execution(eid)
    assert result.status == "cancelled"
    assert result.finished_at is not None
    assert {t: r.status for t, r in result.tasks.items()} == {
        "first": TaskStatus.SKIPPED,
        "second": TaskStatus.SKIPPED,
        "third": TaskStatus.SKIPPED,
    }
    assert result.tasks["second"].skip_reason == "execution cancelled"
    assert recorder.count("first") == 1
    assert recorder.count("second") == 0
    assert recorder.count("third") == 0
    assert runner.store.get_outputs(eid, ["first"]) == {}
    names = events(runner, eid)
    assert "execution_cancelled" in names
    assert "task_completed" not in names


def test_cancel_cancels_running_async_task(
    runner: DefaultRunner, name: Callable[[str], str], recorder: Recorder
) -> None:
    started = threading.Event()
    cancelled = threading.Event()
    wf_name = name("cancel_async")

    @workflow(name=wf_name)
    class CancelAsync:
        @task
        async def waiting(context: Context) -> None:
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        @task(dependencies=[waiting])
        def after(context: Context) -> None:
            recorder.hit("after")

    eid = runner.schedule_workflow(wf_name)
    assert started.wait(10)
    runner.cancel(eid)

    result = runner.wait(eid, timeout=10)
    assert result.status == "cancelled"
    assert cancelled.wait(5), "the running coroutine should be cancelled"
    assert result.tasks["after"].status == TaskStatus.SKIPPED
    assert recorder.count("after") == 0


def test_cancelled_run_frees_its_slot(
    make_runner: Callable[..., DefaultRunner], name: Callable[[str], str]
) -> None:
    """With one slot, cancelling the run that holds it lets the next run proceed."""
    runner = make_runner(max_concurrent_tasks=1)
    started = threading.Event()
    wf_block, wf_quick = name("blocker"), name("quick")

    @workflow(name=wf_block)
    class Blocker:
        @task
        async def hold(context: Context) -> None:
            started.set()
            await asyncio.sleep(30)

    @workflow(name=wf_quick)
    class Quick:
        @task
        def quick(context: Context) -> None:
            context.insert("done", True)

    blocked = runner.schedule_workflow(wf_block)
    assert started.wait(10)
    runner.cancel(blocked)
    result = runner.execute(wf_quick, timeout=10)
    assert result.status == "completed"


def test_cancel_finished_run_is_invalid(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    wf_name = name("finished")

    @workflow(name=wf_name)
    class Finished:
        @task
        def only(context: Context) -> None:
            pass

    result = runner.execute(wf_name)
    assert result.status == "completed"

    with pytest.raises(InvalidStateError, match="already completed"):
        runner.cancel(result.execution_id)
    with pytest.raises(InvalidStateError):
        runner.pause(result.execution_id)
    with pytest.raises(InvalidStateError):
        runner.resume(result.execution_id)
    assert runner.get_execution(result.execution_id).status == "completed"


def test_cancel_twice_is_invalid(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    started = threading.Event()
    wf_name = name("cancel_twice")

    @workflow(name=wf_name)
    class CancelTwice:
        @task
        async def hold(context: Context) -> None:
            started.set()
            await asyncio.sleep(30)

    eid = runner.schedule_workflow(wf_name)
    assert started.wait(10)
    runner.cancel(eid)
    with pytest.raises(InvalidStateError, match="cancelled"):
        runner.cancel(eid)


def test_control_of_unknown_execution(runner: DefaultRunner) -> None:
    with pytest.raises(ExecutionNotFoundError):
        runner.cancel("no-such-run")
    with pytest.raises(ExecutionNotFoundError):
        runner.pause("no-such-run")
    with pytest.raises(ExecutionNotFoundError):
        runner.resume("no-such-run")


def test_pause_stops_next_task_and_resume_completes(
    runner: DefaultRunner,
    name: Callable[[str], str],
    recorder: Recorder,
    until: Callable[..., None],
    events: Callable[..., list[str]],
) -> None:
    started = threading.Event()
    release = threading.Event()
    wf_name = name("pause")

    @workflow(name=wf_name)
    class Pause:
        @task
        def first(context: Context) -> None:
            recorder.hit("first")
            started.set()
            release.wait(10)
            context.insert("first", True)

        @task(dependencies=[first])
        def second(context: Context) -> None:
            recorder.hit("second")
            context.insert("second", True)

        @task(dependencies=[second])
        def third(context: Context) -> None:
            recorder.hit("third")
            context.insert("third", True)

    eid = runner.schedule_workflow(wf_name)
    assert started.wait(10)
    runner.pause(eid)
    release.set()  # the running task finishes while the run is paused

    until(
        lambda: runner.get_execution(eid).tasks["first"].status == TaskStatus.COMPLETED,
        what="the running task to finish while paused",
    )
    time.sleep(0.4)  # several poll intervals: nothing new may start

    paused = runner.get_execution(eid)
    assert paused.status == ExecutionStatus.PAUSED
    assert paused.tasks["second"].status in (TaskStatus.READY, TaskStatus.PENDING)
    assert paused.tasks["third"].status == TaskStatus.PENDING
    assert recorder.count("second") == 0
    assert recorder.count("third") == 0
    with pytest.raises(InvalidStateError):
        runner.pause(eid)  # already paused

    runner.resume(eid)
    result = runner.wait(eid, timeout=10)

    assert result.status == "completed"
    assert result.final_context == {"first": True, "second": True, "third": True}
    assert [recorder.count(t) for t in ("first", "second", "third")] == [1, 1, 1]
    names = events(runner, eid)
    assert names.index("execution_paused") < names.index("execution_resumed")
    second_started = [
        e
        for e in runner.store.get_events(eid)
        if e.event == "task_started" and e.task_id == "second"
    ]
    resumed = [e for e in runner.store.get_events(eid) if e.event == "execution_resumed"]
    assert second_started[0].id > resumed[0].id


def test_paused_run_completes_when_its_last_task_finishes(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    """Pause only stops new tasks from starting: a run whose last task finishes while it is
    paused has nothing left to start, so it completes."""
    started = threading.Event()
    release = threading.Event()
    wf_name = name("pause_last")

    @workflow(name=wf_name)
    class PauseLast:
        @task
        def only(context: Context) -> None:
            started.set()
            release.wait(10)
            context.insert("only", True)

    eid = runner.schedule_workflow(wf_name)
    assert started.wait(10)
    runner.pause(eid)
    release.set()
    result = runner.wait(eid, timeout=10)
    assert result.status == "completed"
    assert result.final_context == {"only": True}


def test_cancel_paused_run(
    runner: DefaultRunner, name: Callable[[str], str], recorder: Recorder
) -> None:
    started = threading.Event()
    release = threading.Event()
    wf_name = name("cancel_paused")

    @workflow(name=wf_name)
    class CancelPaused:
        @task
        def first(context: Context) -> None:
            started.set()
            release.wait(10)

        @task(dependencies=[first])
        def second(context: Context) -> None:
            recorder.hit("second")

    eid = runner.schedule_workflow(wf_name)
    assert started.wait(10)
    runner.pause(eid)
    release.set()
    time.sleep(0.2)
    runner.cancel(eid)

    result = runner.wait(eid, timeout=5)
    assert result.status == "cancelled"
    assert result.tasks["second"].status == TaskStatus.SKIPPED
    with pytest.raises(InvalidStateError):
        runner.resume(eid)
    time.sleep(0.2)
    assert recorder.count("second") == 0


def test_pause_and_resume_from_another_runner(
    make_runner: Callable[..., DefaultRunner], name: Callable[[str], str], recorder: Recorder
) -> None:
    """A controller that cannot run the workflow (empty catalog) pauses and resumes a run; the
    worker must notice the resume through the database alone (its poll)."""
    started = threading.Event()
    release = threading.Event()
    wf_name = name("remote_pause")

    @workflow(name=wf_name)
    class RemotePause:
        @task
        def first(context: Context) -> None:
            started.set()
            release.wait(10)
            recorder.hit("first")

        @task(dependencies=[first])
        def second(context: Context) -> None:
            recorder.hit("second")
            context.insert("second", True)

    worker = make_runner()
    controller = make_runner(workflows=WorkflowCatalog())
    eid = worker.schedule_workflow(wf_name)
    assert started.wait(10)
    controller.pause(eid)
    release.set()
    time.sleep(0.4)
    assert worker.get_execution(eid).status == "paused"
    assert recorder.count("second") == 0

    controller.resume(eid)
    result = worker.wait(eid, timeout=10)

    assert result.status == "completed"
    assert result.final_context == {"second": True}
    assert recorder.count("second") == 1


def _hold_run_and_complete_it(db_url: str, execution_id: str) -> Callable[[], None]:
    """On a connection of its own, lock the run's row and mark it completed without
    committing yet; returns the commit."""
    if db_url.startswith("sqlite"):
        import sqlite3

        conn: Any = sqlite3.connect(db_url[len("sqlite:///") :], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE workflow_executions SET status='completed', finished_at=? WHERE id=?",
            (time.time(), execution_id),
        )
    else:
        import psycopg

        conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
        conn.execute("SELECT 1 FROM workflow_executions WHERE id=%s FOR UPDATE", (execution_id,))
        conn.execute(
            "UPDATE workflow_executions SET status='completed', finished_at=%s WHERE id=%s",
            (time.time(), execution_id),
        )

    def commit() -> None:
        conn.execute("COMMIT") if db_url.startswith("sqlite") else conn.commit()
        conn.close()

    return commit


@pytest.mark.parametrize("action", ["cancel", "pause"])
def test_control_of_a_run_that_ends_meanwhile_is_refused(
    db_url: str, insert_run: Callable[..., str], action: str
) -> None:
    """A run completes (in another transaction) while cancel or pause waits for it: the call
    is refused with InvalidStateError and changes nothing (no 'cancelled' event on a run that
    stays completed, no skipped tasks)."""
    client = DefaultRunner(db_url, execute_tasks=False)
    try:
        eid = insert_run(client.store, [("only", 0, 0, 1)])
        commit = _hold_run_and_complete_it(db_url, eid)
        outcome: list[BaseException | None] = []

        def control() -> None:
            try:
                getattr(client, action)(eid)
            except BaseException as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        thread = threading.Thread(target=control)
        thread.start()
        time.sleep(0.5)  # the call now waits for the run's lock
        commit()
        thread.join(20)
        assert len(outcome) == 1
        assert isinstance(outcome[0], InvalidStateError), outcome
        assert "completed" in str(outcome[0])
        assert client.get_execution(eid).status == "completed"
        events = [e.event for e in client.store.get_events(eid)]
        assert "execution_cancelled" not in events and "execution_paused" not in events
        assert [t.status for t in client.store.get_tasks(eid)] == ["ready"]
    finally:
        client.shutdown()


def test_control_of_an_unknown_run_says_so(runner: DefaultRunner) -> None:
    for action in (runner.cancel, runner.pause, runner.resume):
        with pytest.raises(ExecutionNotFoundError):
            action("no-such-run")
