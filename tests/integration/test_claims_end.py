"""Every claim the engine takes ends: as an outcome, or handed back to the queue. None is left
'running' behind the worker's live heartbeat, where no one would ever recover it; and the
engine's waits on the database never stall the loop that runs ``async def`` bodies.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.model.workflow import WorkflowCatalog, workflow_of
from cloacina.store import open_store

pytestmark = pytest.mark.timeout(90)

RunnerFactory = Callable[..., DefaultRunner]

#: Short timers (as the integration fixtures use) for the tests pinned to SQLite.
FAST: dict[str, Any] = {
    "poll_interval": 0.05,
    "heartbeat_interval": 0.1,
    "stale_claim_threshold": 0.5,
}


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _events(runner: DefaultRunner, execution_id: str) -> list[str]:
    return [e.event for e in runner.store.get_events(execution_id)]


def test_an_outcome_whose_workflow_left_the_catalog_is_handed_back(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    """The workflow of a running task is unloaded before its body returns: the claim goes
    back to the queue (not dropped, leaving the task 'running' forever), and the task runs
    again once a runner knows the workflow."""
    release = threading.Event()
    calls: list[int] = []

    @workflow(name=name("leaves_catalog"))
    class leaves_catalog:
        @task()
        def body(context: Context) -> None:
            calls.append(1)
            release.wait(10)

    wf = workflow_of(leaves_catalog)
    mine = WorkflowCatalog()
    mine.add(wf)
    runner = make_runner(workflows=mine)
    eid = runner.schedule_workflow(wf.name)
    _wait_for(lambda: calls == [1], "the body to start")
    mine.remove(wf.name)
    release.set()
    _wait_for(lambda: "task_handed_back" in _events(runner, eid), "the claim to be handed back")
    (row,) = runner.store.get_tasks(eid)
    assert row.status == "ready"
    assert row.attempt == 0  # a hand-back is not an attempt
    mine.add(wf)
    runner._engine.wake()
    result = runner.wait(eid, timeout=20)
    assert result.status == "completed"
    assert len(calls) == 2


def test_a_package_whose_process_cannot_be_spawned_fails_its_task(
    tmp_path: Path,
    make_package: Callable[..., bytes],
    make_package_runner: RunnerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An OSError from the machinery that runs a packaged task (here: the interpreter to
    spawn is gone) fails the task instead of escaping the loop with the claim held: the
    slot is freed, the run ends, and shutdown does not wait out its grace."""
    flows = (
        "from cloacina import Context, packaged_workflow, task\n\n"
        '@packaged_workflow(name="spawnless_flow", package="spawnless")\n'
        "class spawnless_flow:\n"
        '    @task(id="only")\n'
        "    def only(context: Context) -> None:\n"
        '        context.insert("ran", True)\n'
    )
    package = make_package(
        tmp_path,
        "spawnless",
        "1.0",
        {"spawnless/__init__.py": "", "spawnless/flows.py": flows},
        ["spawnless.flows"],
    )
    runner = make_package_runner(max_concurrent_tasks=1, shutdown_grace=30.0)
    runner.register_workflow(package)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    result = runner.execute("spawnless_flow", timeout=20)
    assert result.status == "failed"
    assert "could not run" in (result.tasks["only"].error or "")
    assert "no-such-python" in (result.tasks["only"].error or "")
    monkeypatch.undo()
    started = time.monotonic()
    runner.shutdown()
    assert time.monotonic() - started < 10, "shutdown waited for a task that had ended"


def test_an_outcome_the_database_refuses_for_good_is_handed_back(
    sqlite_url: str, name: Callable[[str], str]
) -> None:
    """The database refuses the outcome, the failure recorded instead, and even a failure
    with no text of the task's: the claim is handed back rather than left 'running'; once
    the database accepts it, the run completes."""

    @workflow(name=name("refused"))
    class refused:
        @task()
        def body(context: Context) -> None:
            context.insert("done", True)

    wf = workflow_of(refused)
    path = sqlite_url[len("sqlite:///") :]
    open_store(sqlite_url).close()  # create the schema
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TRIGGER refuse_end BEFORE UPDATE ON task_executions"
        " WHEN NEW.status IN ('completed', 'failed')"
        " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
    )
    try:
        with DefaultRunner(sqlite_url, **FAST) as runner:
            _refused_then_accepted(runner, conn, wf.name)
    finally:
        conn.close()


def _refused_then_accepted(runner: DefaultRunner, conn: sqlite3.Connection, wf: str) -> None:
    eid = runner.schedule_workflow(wf)
    _wait_for(
        lambda: "task_handed_back" in _events(runner, eid),
        "the refused claim to be handed back",
        timeout=30,
    )
    conn.execute("DROP TRIGGER refuse_end")
    result = runner.wait(eid, timeout=30)
    assert result.status == "completed", result.error
    assert result.final_context["done"] is True


def test_async_bodies_keep_running_while_the_engine_waits_for_the_database(
    sqlite_url: str, name: Callable[[str], str]
) -> None:
    """Another connection holds SQLite's write lock for 2 s while a task completes, so the
    engine waits to record it: an ``async def`` body meanwhile keeps running on its own
    loop (and its timeout keeps time)."""
    ticks: list[float] = []
    quick_may_finish = threading.Event()

    @workflow(name=name("db_wait"))
    class db_wait:
        @task()
        def quick(context: Context) -> None:
            quick_may_finish.wait(10)

        @task()
        async def ticker(context: Context) -> None:
            for _ in range(40):
                await asyncio.sleep(0.05)
                ticks.append(time.monotonic())

        @task(timeout=0.5)
        async def overruns(context: Context) -> None:
            await asyncio.sleep(30)

    with DefaultRunner(sqlite_url, busy_timeout=10.0, **FAST) as runner:
        _ticks_through_a_locked_database(
            runner, sqlite_url, workflow_of(db_wait).name, ticks, quick_may_finish
        )


def _ticks_through_a_locked_database(
    runner: DefaultRunner,
    sqlite_url: str,
    wf: str,
    ticks: list[float],
    quick_may_finish: threading.Event,
) -> None:
    eid = runner.schedule_workflow(wf)
    _wait_for(lambda: len(ticks) >= 2, "the ticker to start")
    blocker = sqlite3.connect(sqlite_url[len("sqlite:///") :], isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    locked_at = time.monotonic()
    try:
        quick_may_finish.set()  # its outcome now waits for the lock, on the engine's loop
        time.sleep(2.0)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    result = runner.wait(eid, timeout=30)
    assert result.status == "failed"  # `overruns` timed out
    assert "timed out" in (result.tasks["overruns"].error or "")
    during = [t for t in ticks if locked_at <= t <= locked_at + 2.0]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) >= 10, f"the async body stalled while the database was locked: {during}"
    assert max(gaps, default=0.0) < 0.5, f"an async body stalled for {max(gaps):.2f}s"
    overruns = result.tasks["overruns"]
    assert overruns.started_at is not None and overruns.finished_at is not None
    took = (overruns.finished_at - overruns.started_at).total_seconds()
    assert took < 1.5, f"a 0.5 s timeout fired after {took:.2f}s"


def test_run_cache_keeps_outputs_only_once_their_transaction_commits() -> None:
    from cloacina.engine.scheduler import RunCache

    cache = RunCache()
    cache.stage("run", "a", '{"x": 1}')
    assert cache.get("run", "a") == '{"x": 1}'  # the rest of the transaction sees it
    cache.discard_staged()
    assert cache.get("run", "a") is None  # a failed transaction leaves nothing behind
    cache.stage("run", "a", '{"x": 2}')
    cache.commit_staged()
    cache.discard_staged()
    assert cache.get("run", "a") == '{"x": 2}'


def test_a_run_of_a_version_no_worker_has_is_named_once_and_can_be_cancelled(
    sqlite_url: str, name: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """The code of a workflow changed while one of its runs was in flight: the worker knows
    the workflow by name but not that run's version. It says so, once, naming the run and
    the version, and the run can be cancelled."""
    from cloacina.store.records import NewEvent, NewTask

    @workflow(name=name("edited"))
    class edited:
        @task()
        def body(context: Context) -> None: ...

    wf = workflow_of(edited)
    store = open_store(sqlite_url)
    try:
        with store.write() as tx:
            tx.create_execution(
                "stranded-run",
                tenant="public",
                package="embedded",
                workflow_name=wf.name,
                workflow_version="0ld0ld0ld0ld0ld",
                input_json="{}",
                tasks=[NewTask("body", 0, (), 1)],
                now=time.time(),
            )
            tx.add_events([NewEvent("stranded-run", None, "execution_started", None, None, 0)])
    finally:
        store.close()
    caplog.set_level("WARNING", logger="cloacina.engine")
    with DefaultRunner(sqlite_url, **FAST) as runner:
        _wait_for(
            lambda: any("stranded-run" in r.getMessage() for r in caplog.records),
            "the warning about the stranded run",
        )
        time.sleep(2.5)  # more checks: still one warning
        warnings = [r.getMessage() for r in caplog.records if "stranded-run" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "0ld0ld0ld0ld" in warnings[0] and "cancel" in warnings[0]
        runner.cancel("stranded-run")
        assert runner.get_execution("stranded-run").status == "cancelled"
