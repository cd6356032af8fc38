"""Independent tasks run in parallel, bounded by ``max_concurrent_tasks``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from cloacina import Context, Task, current_task, task, workflow

if TYPE_CHECKING:
    from .conftest import Recorder, RunnerFactory

pytestmark = pytest.mark.timeout(60)

SLEEP = 0.2
WIDTH = 8


def _sync_task(tid: str, rec: Recorder, deps: tuple[str, ...] = ()) -> Task:
    def body(context: Context) -> None:
        rec.enter()
        try:
            time.sleep(SLEEP)
        finally:
            rec.leave()
        rec.hit(tid)
        context.insert(tid, True)

    body.__name__ = tid
    return task(id=tid, dependencies=deps)(body)


def _async_task(tid: str, rec: Recorder, deps: tuple[str, ...] = ()) -> Task:
    async def body(context: Context) -> None:
        rec.enter()
        try:
            await asyncio.sleep(SLEEP)
        finally:
            rec.leave()
        rec.hit(tid)
        context.insert(tid, True)

    body.__name__ = tid
    return task(id=tid, dependencies=deps)(body)


def _wide_workflow(wf_name: str, rec: Recorder, kinds: str) -> str:
    """A workflow of WIDTH independent tasks; ``kinds`` is 'sync', 'async' or 'mixed'."""
    members: dict[str, object] = {}
    for i in range(WIDTH):
        tid = f"t{i}"
        use_async = kinds == "async" or (kinds == "mixed" and i % 2 == 1)
        members[tid] = (_async_task if use_async else _sync_task)(tid, rec)
    workflow(name=wf_name)(type(f"Wide_{kinds}", (), members))
    return wf_name


@pytest.mark.parametrize("kinds", ["sync", "async", "mixed"])
def test_independent_tasks_run_in_parallel(
    make_runner: RunnerFactory, name: Callable[[str], str], recorder: Recorder, kinds: str
) -> None:
    runner = make_runner(max_concurrent_tasks=WIDTH)
    wf_name = _wide_workflow(name(f"wide_{kinds}"), recorder, kinds)

    started = time.monotonic()
    result = runner.execute(wf_name, timeout=30)
    elapsed = time.monotonic() - started

    assert result.status == "completed"
    assert len(result.tasks) == WIDTH
    assert all(r.status == "completed" for r in result.tasks.values())
    assert sum(recorder.counts.values()) == WIDTH
    serial = WIDTH * SLEEP
    assert elapsed < serial / 2, f"{WIDTH} tasks of {SLEEP}s took {elapsed:.2f}s: not parallel"
    assert recorder.peak >= WIDTH // 2


@pytest.mark.parametrize("kinds", ["sync", "async", "mixed"])
def test_max_concurrent_tasks_bounds_parallelism(
    make_runner: RunnerFactory, name: Callable[[str], str], recorder: Recorder, kinds: str
) -> None:
    limit = 2
    runner = make_runner(max_concurrent_tasks=limit)
    wf_name = _wide_workflow(name(f"bounded_{kinds}"), recorder, kinds)

    started = time.monotonic()
    result = runner.execute(wf_name, timeout=30)
    elapsed = time.monotonic() - started

    assert result.status == "completed"
    assert sum(recorder.counts.values()) == WIDTH
    assert recorder.peak <= limit, f"{recorder.peak} tasks ran at once; the limit is {limit}"
    assert recorder.peak == limit, "the limit should still allow two tasks at once"
    # WIDTH / limit waves of SLEEP each, at least.
    assert elapsed >= (WIDTH / limit) * SLEEP * 0.9


def test_limit_holds_across_concurrent_runs(
    make_runner: RunnerFactory, name: Callable[[str], str], recorder: Recorder
) -> None:
    """Several runs at once share the runner's slots: the limit is per runner, not per run."""
    limit = 3
    runner = make_runner(max_concurrent_tasks=limit)
    wf_name = _wide_workflow(name("shared_slots"), recorder, "mixed")

    ids = [runner.schedule_workflow(wf_name) for _ in range(3)]
    results = [runner.wait(eid, timeout=30) for eid in ids]

    assert all(r.status == "completed" for r in results)
    assert sum(recorder.counts.values()) == 3 * WIDTH
    assert recorder.peak <= limit


def test_current_task_is_isolated_between_concurrent_tasks(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    """Each concurrently running task (thread or coroutine) sees its own current_task()."""
    mismatches: list[str] = []

    def check(tid: str) -> None:
        info = current_task()
        if info is None or info.task_id != tid:
            mismatches.append(f"{tid} saw {info}")

    def make(tid: str, use_async: bool) -> Task:
        if use_async:

            async def body(context: Context) -> None:
                check(tid)
                await asyncio.sleep(0.1)
                check(tid)
                context.insert(tid, current_task().execution_id)  # type: ignore[union-attr]

        else:

            def body(context: Context) -> None:  # type: ignore[misc]
                check(tid)
                time.sleep(0.1)
                check(tid)
                context.insert(tid, current_task().execution_id)  # type: ignore[union-attr]

        body.__name__ = tid
        return task(id=tid)(body)

    wf_name = name("isolation")
    members = {f"t{i}": make(f"t{i}", i % 2 == 0) for i in range(WIDTH)}
    workflow(name=wf_name)(type("Isolation", (), members))
    runner = make_runner(max_concurrent_tasks=WIDTH)

    ids = [runner.schedule_workflow(wf_name) for _ in range(2)]
    results = [runner.wait(eid, timeout=30) for eid in ids]

    assert mismatches == []
    for eid, result in zip(ids, results, strict=True):
        assert result.status == "completed"
        assert result.final_context == {f"t{i}": eid for i in range(WIDTH)}
    assert current_task() is None  # nothing leaks into the caller


@pytest.mark.parametrize("kinds", ["sync", "async"])
def test_limit_holds_when_a_completion_releases_many_dependents(
    make_runner: RunnerFactory, name: Callable[[str], str], recorder: Recorder, kinds: str
) -> None:
    """root -> WIDTH leaves -> join: the root's completion makes WIDTH tasks runnable at once;
    only ``max_concurrent_tasks`` may start, the rest wait for free slots."""
    limit = 3
    wf_name = name(f"fan_limit_{kinds}")
    make = _async_task if kinds == "async" else _sync_task
    leaves = {f"t{i}": make(f"t{i}", recorder, ("root",)) for i in range(WIDTH)}

    def root(context: Context) -> None:
        context.insert("root", True)

    def join(context: Context) -> None:
        context.insert("joined", sorted(k for k in context if k.startswith("t")))

    members = {
        "root": task(id="root")(root),
        **leaves,
        "join": task(id="join", dependencies=list(leaves))(join),
    }
    workflow(name=wf_name)(type("FanLimit", (), members))
    runner = make_runner(max_concurrent_tasks=limit)

    result = runner.execute(wf_name, timeout=30)

    assert result.status == "completed"
    assert result.final_context["joined"] == sorted(leaves)
    assert sum(recorder.counts.values()) == WIDTH
    assert recorder.peak <= limit, f"{recorder.peak} tasks ran at once; the limit is {limit}"
    assert recorder.peak == limit
