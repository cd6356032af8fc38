"""A run's graph and history live in the database: each task's dependencies, every attempt
of every task as its own record, and the write operations that reruns and dynamic fan-out
stand on (reset a set of tasks, add tasks to a started run), with counters recomputed from
the rows."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from cloacina import Context, DefaultRunner, RetryPolicy, TaskError, task, workflow
from cloacina.model.workflow import workflow_of
from cloacina.store.records import NewTask, StaleClaim, WorkerRow

pytestmark = pytest.mark.timeout(60)

RunnerFactory = Callable[..., DefaultRunner]


def test_the_graph_of_a_run_is_stored_with_it(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    @workflow(name=name("diamond"))
    class diamond:
        @task()
        def top(context: Context) -> None: ...

        @task(dependencies=[top])
        def left(context: Context) -> None: ...

        @task(dependencies=[top])
        def right(context: Context) -> None: ...

        @task(dependencies=[right, left])  # declared order is kept
        def bottom(context: Context) -> None: ...

    result = runner.execute(workflow_of(diamond).name, timeout=20)
    graph = {t.task_id: t.dependencies for t in runner.store.get_tasks(result.execution_id)}
    assert graph == {
        "top": (),
        "left": ("top",),
        "right": ("top",),
        "bottom": ("right", "left"),
    }


def test_every_attempt_of_a_task_is_kept(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    tries: list[int] = []

    @workflow(name=name("flaky"))
    class flaky:
        @task(retry=RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=False))
        def shaky(context: Context) -> None:
            tries.append(1)
            if len(tries) < 3:
                raise TaskError(f"try {len(tries)} failed")

        @task(dependencies=[shaky])
        def after(context: Context) -> None: ...

    result = runner.execute(workflow_of(flaky).name, timeout=20)
    assert result.status == "completed"
    attempts = runner.store.get_attempts(result.execution_id)
    shaky = [a for a in attempts if a.task_id == "shaky"]
    assert [(a.attempt, a.outcome, a.error) for a in shaky] == [
        (1, "failed", "try 1 failed"),
        (2, "failed", "try 2 failed"),
        (3, "completed", None),
    ]
    for a in shaky:
        assert a.worker_id == runner.worker_id
        assert a.started_at is not None and a.started_at <= a.finished_at
    assert [(a.task_id, a.outcome) for a in attempts if a.task_id == "after"] == [
        ("after", "completed")
    ]


def test_a_taken_back_attempt_is_recorded_as_lost_and_a_hand_back_is_not_an_attempt(
    db_url: str, insert_run: Callable[..., str]
) -> None:
    from cloacina.store import open_store

    store = open_store(db_url)
    try:
        eid = insert_run(store, [("a", 0, 0, 1), ("b", 1, 0, 1)])
        now = time.time()
        store.register_worker(WorkerRow("gone", "host", 1, "running", now, now, 0, 8, "0", None))
        with store.write() as tx:
            first, second = tx.claim_ready(2, [("wf", "v1")], "gone", now)
        with store.write() as tx:
            assert tx.hand_back([second]) == [second]
        time.sleep(0.3)
        with store.write() as tx:
            stale = StaleClaim(
                first.row_id,
                eid,
                first.task_id,
                first.recovery_count,
                first.attempt,
                "wf",
                "v1",
                first.claim_token,
            )
            assert tx.requeue_stale(stale, 0.1)
        attempts = store.get_attempts(eid)
        assert [(a.task_id, a.attempt, a.recovery, a.outcome, a.worker_id) for a in attempts] == [
            ("a", 1, 0, "lost", "gone")
        ]
    finally:
        store.close()


def test_reset_tasks_recomputes_the_counters_and_keeps_the_history(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    """b fails, c is skipped, the run fails; b and c are reset (what a rerun does): the
    counters come from the rows, the run is running again, and when b is let run it
    completes as attempt 2 with attempt 1 still on record."""
    fail = [True]

    @workflow(name=name("rerunnable"))
    class rerunnable:
        @task()
        def a(context: Context) -> None:
            context.insert("a", 1)

        @task(dependencies=[a])
        def b(context: Context) -> None:
            if fail[0]:
                raise TaskError("b broke", retryable=False)
            context.insert("b", 2)

        @task(dependencies=[b])
        def c(context: Context) -> None:
            context.insert("c", 3)

    first = runner.execute(workflow_of(rerunnable).name, timeout=20)
    assert first.status == "failed"
    assert {k: str(t.status) for k, t in first.tasks.items()} == {
        "a": "completed",
        "b": "failed",
        "c": "skipped",
    }
    eid = first.execution_id
    store = runner.store
    with store.write() as tx:
        tx.lock_runs([eid])
        states = {st.task_id: st for st in tx.reset_tasks(eid, ["b", "c"], time.time())}
    assert (states["b"].deps_total, states["b"].deps_remaining) == (1, 0)
    assert (states["c"].deps_total, states["c"].deps_remaining) == (1, 1)
    row = store.get_execution(eid)
    assert row is not None
    assert (row.status, row.tasks_remaining, row.tasks_failed, row.error) == (
        "running",
        2,
        0,
        None,
    )
    tasks = {t.task_id: t for t in store.get_tasks(eid)}
    assert (tasks["b"].status, tasks["b"].attempt, tasks["b"].error) == ("pending", 1, None)
    assert store.get_outputs(eid, ["a", "b"]).keys() == {"a"}  # a's output is kept

    fail[0] = False
    with store.write() as tx:
        tx.mark_ready([states["b"].row_id])
    runner._engine.wake()
    again = runner.wait(eid, timeout=20)
    assert again.status == "completed", again.error
    assert again.final_context == {"a": 1, "b": 2, "c": 3}
    assert again.tasks["b"].attempts == 2  # attempt numbers continue
    history = [(a.task_id, a.attempt, a.outcome) for a in store.get_attempts(eid)]
    assert history == [
        ("a", 1, "completed"),
        ("b", 1, "failed"),
        ("b", 2, "completed"),
        ("c", 1, "completed"),
    ]


def test_tasks_can_be_added_to_a_started_run(db_url: str, insert_run: Callable[..., str]) -> None:
    from cloacina.store import open_store

    store = open_store(db_url)
    try:
        eid = insert_run(store, [("a", 0, 0, 1), ("b", 1, 1, 1)])
        with store.write() as tx:
            (claim,) = tx.claim_ready(1, [("wf", "v1")], "w", time.time())
            assert tx.complete_task(claim, '{"a": 1}', time.time())
            added = tx.add_tasks(
                eid,
                [
                    NewTask("b[0]", 2, ("a",), 1),
                    NewTask("b[1]", 3, ("a", "b"), 1),
                ],
                time.time(),
            )
        counts = {st.task_id: (st.deps_total, st.deps_remaining) for st in added}
        assert counts == {"b[0]": (1, 0), "b[1]": (2, 1)}
        row = store.get_execution(eid)
        assert row is not None
        # a completed (its progress was not counted here: complete_task alone), so the run
        # has b, b[0] and b[1] left, counted from the rows.
        assert (row.tasks_total, row.tasks_remaining) == (4, 3)
        graph = {t.task_id: t.dependencies for t in store.get_tasks(eid)}
        assert graph["b[1]"] == ("a", "b")
    finally:
        store.close()
