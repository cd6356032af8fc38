"""Many runs at once, submitted from many threads (and runners): every task runs once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from cloacina import Context, DefaultRunner, Task, current_task, task, workflow

pytestmark = pytest.mark.timeout(60)

LEAVES = 10


class Tally:
    """Counts task bodies per (execution id, task id), thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def hit(self) -> None:
        info = current_task()
        assert info is not None
        with self.lock:
            self.counts[(info.execution_id, info.task_id)] += 1


def _fan_out(wf_name: str, tally: Tally) -> None:
    """root -> leaf0..leaf9 -> join (half of the leaves async)."""

    def root(context: Context) -> None:
        tally.hit()
        context.insert("n", context.get("seed", 0))

    members: dict[str, Task] = {"root": task(id="root")(root)}
    for i in range(LEAVES):
        if i % 2:

            async def leaf(context: Context, i: int = i) -> None:
                tally.hit()
                context.set("leaves", {**context.get("leaves", {}), f"l{i}": context["n"] + i})

        else:

            def leaf(context: Context, i: int = i) -> None:  # type: ignore[misc]
                tally.hit()
                context.set("leaves", {**context.get("leaves", {}), f"l{i}": context["n"] + i})

        members[f"leaf{i}"] = task(id=f"leaf{i}", dependencies=["root"])(leaf)

    def join(context: Context) -> None:
        tally.hit()
        context.insert("total", sum(context["leaves"].values()))

    members["join"] = task(id="join", dependencies=[f"leaf{i}" for i in range(LEAVES)])(join)
    workflow(name=wf_name)(type("FanOut", (), members))


def _expected_total(seed: int) -> int:
    return sum(seed + i for i in range(LEAVES))


def test_fifty_runs_from_eight_threads(
    make_runner: Callable[..., DefaultRunner], name: Callable[[str], str]
) -> None:
    tally = Tally()
    wf_name = name("fan_out")
    _fan_out(wf_name, tally)
    runner = make_runner(max_concurrent_tasks=8)
    runs = 50

    def submit(seed: int) -> tuple[int, str]:
        return seed, runner.schedule_workflow(wf_name, {"seed": seed})

    with ThreadPoolExecutor(max_workers=8) as pool:
        submitted = list(pool.map(submit, range(runs)))
        results = list(pool.map(lambda s: (s[0], runner.wait(s[1], timeout=45)), submitted))

    ids = {eid for _, eid in submitted}
    assert len(ids) == runs
    for seed, result in results:
        assert result.status == "completed", result.error
        assert result.final_context["total"] == _expected_total(seed)
        assert len(result.final_context["leaves"]) == LEAVES
        assert all(t.attempts == 1 and t.recoveries == 0 for t in result.tasks.values())

    tasks_per_run = LEAVES + 2
    assert len(tally.counts) == runs * tasks_per_run
    assert set(tally.counts.values()) == {1}, "some task body ran more than once"
    assert {eid for eid, _ in tally.counts} == ids

    for eid in ids:
        events = runner.store.get_events(eid)
        completed = Counter(e.task_id for e in events if e.event == "task_completed")
        assert len(completed) == tasks_per_run
        assert set(completed.values()) == {1}
        assert [e.event for e in events].count("execution_completed") == 1


def test_two_runners_share_one_database(
    make_runner: Callable[..., DefaultRunner], name: Callable[[str], str]
) -> None:
    """Two runners on the same file claim from the same queue; no task runs twice."""
    tally = Tally()
    wf_name = name("fan_out_shared")
    _fan_out(wf_name, tally)
    # A generous stale threshold: this test is about claims, not crash recovery.
    settings = {"max_concurrent_tasks": 4, "heartbeat_interval": 0.2, "stale_claim_threshold": 5}
    first = make_runner(**settings)
    second = make_runner(**settings)
    runs = 20

    ids = [
        (first if i % 2 else second).schedule_workflow(wf_name, {"seed": i}) for i in range(runs)
    ]
    results = [first.wait(eid, timeout=45) for eid in ids]

    assert all(r.status == "completed" for r in results)
    assert len(tally.counts) == runs * (LEAVES + 2)
    assert set(tally.counts.values()) == {1}
    worker_id = {
        t.worker_id.rsplit(":", 1)[-1]
        for eid in ids
        for t in first.store.get_tasks(eid)
        if t.worker_id is not None
    }
    runner_suffixes = {r.worker_id.rsplit(":", 1)[-1] for r in (first, second)}
    assert worker_id <= runner_suffixes
