"""Dynamic fan-out (DESIGN §11, ``map_over``) on SQLite and PostgreSQL: results in index
order, retries of some instances, partial failure with and without ``allow_partial``, an
empty list, bad input, 100,000 instances (and what the faces read of them), packaged and
command tasks. Worker processes (``max_parallel`` across them, a worker SIGKILLed mid-map)
are in ``test_map_workers.py``."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloacina import Context, DefaultRunner, RetryPolicy, TaskError, task, workflow
from cloacina.server.ui.run_state import run_state
from cloacina.settings import Settings
from cloacina.taskinfo import current_task

pytestmark = pytest.mark.timeout(120)

RunnerFactory = Callable[..., DefaultRunner]
FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=False)


def _flow(flow_name: str, process: Any, *, items: Any = None, key: str = "files") -> None:
    """A three-task workflow: ``make`` puts ``items`` in the context, ``process`` (mapped)
    runs per item, ``report`` reads the list of results."""
    values = list(range(10)) if items is None else items

    @workflow(name=flow_name)
    class _wf:
        @task(id="make")
        def make(context: Context) -> None:
            if values is not _MISSING:
                context.insert(key, values)

        process_task = process

        @task(id="report", dependencies=["process"], trigger_rule="all_done")
        def report(context: Context) -> None:
            results = context.get("process")
            context.insert("seen", None if results is None else len(results))


_MISSING: Any = object()


@pytest.fixture
def flow_name(name: Callable[[str], str]) -> str:
    """A workflow name of this test's own."""
    return name("map")


def test_results_in_index_order_with_retries_of_some_items(
    make_runner: RunnerFactory, flow_name: str
) -> None:
    seen: dict[int, list[int]] = {}

    @task(id="process", dependencies=["make"], map_over="files", retry=FAST_RETRY)
    def process(context: Context) -> Any:
        info = current_task()
        assert info is not None and info.map_index is not None
        seen.setdefault(info.map_index, []).append(info.attempt)
        if info.map_index % 4 == 1 and info.attempt == 1:
            raise RuntimeError(f"item {context['item']} is flaky")
        assert "files" not in context  # the list is not copied into each instance
        return {"item": context["item"], "index": info.map_index, "attempt": info.attempt}

    _flow(flow_name, process, items=[f"f{i}" for i in range(12)])
    runner = make_runner()
    result = runner.execute(flow_name, timeout=60)
    assert result.status == "completed", result.error
    expected = [{"item": f"f{i}", "index": i, "attempt": 2 if i % 4 == 1 else 1} for i in range(12)]
    assert result.final_context["process"] == expected
    assert result.final_context["files"] == [f"f{i}" for i in range(12)]
    assert result.final_context["seen"] == 12
    assert {i: a for i, a in seen.items()} == {i: [1, 2] if i % 4 == 1 else [1] for i in range(12)}

    mapped = result.tasks["process"]
    assert set(result.tasks) == {"make", "process", "report"}
    assert mapped.status == "completed" and mapped.instances is not None
    assert (mapped.instances.total, mapped.instances.counts) == (12, {"completed": 12})
    assert runner.get_task(result.execution_id, "process").instances == mapped.instances
    assert runner.get_task(result.execution_id, "make").instances is None
    page = runner.get_map_instances(result.execution_id, "process", limit=5)
    assert [(i.index, i.task_id, i.attempts) for i in page] == [
        (0, "process[0]", 1),
        (1, "process[1]", 2),
        (2, "process[2]", 1),
        (3, "process[3]", 1),
        (4, "process[4]", 1),
    ]
    rest = runner.get_map_instances(result.execution_id, "process", after=4, limit=100)
    assert [i.index for i in rest] == list(range(5, 12))
    # Each instance keeps its own attempts: the failed first try of instance 5.
    attempts = runner.get_attempts(result.execution_id, "process[5]")
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "failed"), (2, "completed")]
    assert "flaky" in (attempts[0].error or "")
    # ... and the run's own list of attempts is not flooded with them.
    assert {a.task_id for a in runner.get_attempts(result.execution_id)} == {
        "make",
        "process",
        "report",
    }


@pytest.mark.parametrize("allow_partial", [False, True])
def test_partial_failure(make_runner: RunnerFactory, flow_name: str, allow_partial: bool) -> None:
    @task(
        id="process",
        dependencies=["make"],
        map_over="files",
        retry=FAST_RETRY,
        allow_partial=allow_partial,
    )
    def process(context: Context) -> int:
        if context["item"] in (3, 7):
            raise TaskError(f"item {context['item']} is bad", retryable=False)
        return int(context["item"]) * 10

    _flow(flow_name, process)
    runner = make_runner()
    result = runner.execute(flow_name, timeout=60)
    mapped = result.tasks["process"]
    assert mapped.instances is not None
    assert mapped.instances.counts == {"completed": 8, "failed": 2}
    assert mapped.instances.failed_indexes == (3, 7)
    if allow_partial:
        assert result.status == "completed", result.error
        assert result.final_context["process"] == [
            None if i in (3, 7) else i * 10 for i in range(10)
        ]
        assert result.final_context["seen"] == 10
    else:
        assert result.status == "failed"
        assert mapped.status == "failed"
        assert "2 of 10 instances failed (indexes 3, 7)" in (mapped.error or "")
        assert "item 3 is bad" in (mapped.error or "")
        assert "process" in (result.error or "")
        # The dependent ran (all_done) on the input alone: no list from a failed map.
        assert result.tasks["report"].status == "completed"
        assert result.final_context["seen"] is None
    failed = runner.get_map_instances(result.execution_id, "process", status="failed")
    assert [(i.index, i.attempts) for i in failed] == [(3, 1), (7, 1)]


def test_an_empty_list_gives_an_empty_result_at_once(
    make_runner: RunnerFactory, flow_name: str
) -> None:
    calls: list[Any] = []

    @task(id="process", dependencies=["make"], map_over="files")
    def process(context: Context) -> None:
        calls.append(context["item"])

    _flow(flow_name, process, items=[])
    result = make_runner().execute(flow_name, timeout=30)
    assert result.status == "completed", result.error
    assert result.final_context["process"] == []
    assert result.final_context["seen"] == 0
    assert calls == []


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        (_MISSING, "map_over='files' names no key of its input context"),
        ({"a": 1}, "context['files'] is dict, not a list"),
        ("abc", "context['files'] is str, not a list"),
        (list(range(6)), "6 items is over the limit of 5 (setting max_map_items)"),
    ],
)
def test_bad_input_fails_the_task_with_the_reason(
    make_runner: RunnerFactory, flow_name: str, items: Any, reason: str
) -> None:
    @task(id="process", dependencies=["make"], map_over="files", retry=FAST_RETRY)
    def process(context: Context) -> int:
        return 1

    _flow(flow_name, process, items=items)
    runner = make_runner(settings=Settings(max_map_items=5))
    result = runner.execute(flow_name, timeout=30)
    assert result.status == "failed"
    mapped = result.tasks["process"]
    assert mapped.status == "failed" and reason in (mapped.error or ""), mapped.error
    assert mapped.attempts == 1  # a bad input is not retried
    # The engine goes on: the same runner runs a good map afterwards.
    good = f"{flow_name}_ok"
    _flow(good, process, items=[1, 2])
    assert runner.execute(good, timeout=30).final_context["process"] == [1, 1]


def test_max_parallel_holds_in_one_process(make_runner: RunnerFactory, flow_name: str) -> None:
    import threading

    lock = threading.Lock()
    state = {"active": 0, "peak": 0}

    @task(id="process", dependencies=["make"], map_over="files", max_parallel=3)
    def process(context: Context) -> int:
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        time.sleep(0.01)
        with lock:
            state["active"] -= 1
        return int(context["item"])

    _flow(flow_name, process, items=list(range(40)))
    result = make_runner(max_concurrent_tasks=16).execute(flow_name, timeout=60)
    assert result.status == "completed", result.error
    assert result.final_context["process"] == list(range(40))
    assert state["peak"] == 3  # the limit, reached and never passed


def test_a_cancelled_run_skips_its_instances(make_runner: RunnerFactory, flow_name: str) -> None:
    @task(id="process", dependencies=["make"], map_over="files", max_parallel=2)
    def process(context: Context) -> int:
        time.sleep(0.05)
        return 1

    _flow(flow_name, process, items=list(range(50)))
    runner = make_runner()
    eid = runner.schedule_workflow(flow_name)
    deadline = time.monotonic() + 20
    while not runner.get_map_instances(eid, "process", status="completed", limit=1):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    runner.cancel(eid)
    result = runner.wait(eid, timeout=20)
    assert result.status == "cancelled"
    counts = result.tasks["process"].instances
    assert counts is not None and counts.total == 50
    assert set(counts.counts) <= {"completed", "skipped", "running"}
    assert counts.counts.get("skipped", 0) > 0
    assert runner.get_execution_summary(eid).tasks_total == 3


@pytest.mark.timeout(180)
def test_100000_instances(make_runner: RunnerFactory, flow_name: str, backend: str) -> None:
    """A normal size (DESIGN §11): it runs, and no read of it loads the instances. (On
    PostgreSQL 20,000, to stay well under a minute: one runner completes about 2,500
    instances a second there, a round trip per statement; bench/map.py measures.)"""
    n = 100_000 if backend == "sqlite" else 20_000

    @task(id="process", dependencies=["make"], map_over="files")
    def process(context: Context) -> int:
        return int(context["item"]) * 2

    _flow(flow_name, process, items=list(range(n)))
    runner = make_runner(max_concurrent_tasks=8 if backend == "sqlite" else 32)
    started = time.monotonic()
    result = runner.execute(flow_name, timeout=150)
    took = time.monotonic() - started
    assert result.status == "completed", result.error
    assert result.final_context["seen"] == n
    assert result.final_context["process"] == [i * 2 for i in range(n)]
    assert took < 60, f"{n} instances took {took:.1f}s"

    eid = result.execution_id
    # The faces read the mapped task as one task with counts, never 100,000 rows.
    began = time.monotonic()
    again = runner.get_execution(eid)
    assert set(again.tasks) == {"make", "process", "report"}
    counts = again.tasks["process"].instances
    assert counts is not None and (counts.total, counts.counts) == (n, {"completed": n})
    attempts = runner.get_attempts(eid)
    assert {a.task_id for a in attempts} == {"make", "process", "report"}
    graph = runner.get_run_graph(eid)
    state = run_state(again, graph, [])
    assert [t[0] for t in state["tasks"]] == ["make", "process", "report"]
    assert time.monotonic() - began < 5
    last = runner.get_map_instances(eid, "process", after=n - 3)
    assert [(i.index, i.status) for i in last] == [(n - 2, "completed"), (n - 1, "completed")]


# ---- packaged and command tasks ----------------------------------------------------------------
PACKAGED_FLOW = """
from cloacina import Context, RetryPolicy, current_task, packaged_workflow, task
from cloacina.packaging.command import command_task


@packaged_workflow(name="NAME", package="PKG")
class flow:
    @task(id="make")
    def make(context: Context) -> None:
        context.insert("words", ["alpha", "beta", "gamma", "delta"])

    @task(id="lengths", dependencies=["make"], map_over="words", max_parallel=2,
          retry=RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False))
    def lengths(context: Context) -> dict:
        info = current_task()
        if info.map_index == 2 and info.attempt == 1:
            raise RuntimeError("first try of gamma fails")
        return {"word": context["item"], "len": len(context["item"]), "at": info.map_index}

    shout = command_task(id="shout", command=["bin/shout.sh"], dependencies=["make"],
                         map_over="words")

    @task(id="report", dependencies=["lengths", "shout"])
    def report(context: Context) -> None:
        context.insert("total", sum(x["len"] for x in context["lengths"]))
"""

SHOUT = b"""#!/bin/sh
exec python3 -c '
import json, os, sys
ctx = json.load(sys.stdin)
print(json.dumps([ctx["item"].upper(), int(os.environ["CLOACINA_MAP_INDEX"])]))
'
"""


def test_packaged_and_command_tasks_map(
    tmp_path: Path,
    make_package: Callable[..., bytes],
    make_package_runner: RunnerFactory,
    flow_name: str,
) -> None:
    package = f"mp_{flow_name[-8:]}"
    body = PACKAGED_FLOW.replace("NAME", f"{package}_flow").replace("PKG", package)
    data = make_package(
        tmp_path,
        package,
        "1.0",
        {f"{package}/__init__.py": "", f"{package}/flows.py": textwrap.dedent(body)},
        [f"{package}.flows"],
        {"bin/shout.sh": (SHOUT, True)},
    )
    runner = make_package_runner()
    runner.register_workflow(data)
    result = runner.execute(f"{package}_flow", timeout=90)
    assert result.status == "completed", (result.error, result.tasks)
    ctx = result.final_context
    assert ctx["lengths"] == [
        {"word": w, "len": len(w), "at": i}
        for i, w in enumerate(["alpha", "beta", "gamma", "delta"])
    ]
    assert ctx["shout"] == [["ALPHA", 0], ["BETA", 1], ["GAMMA", 2], ["DELTA", 3]]
    assert ctx["total"] == 19
    gamma = runner.get_map_instances(result.execution_id, "lengths", after=1, limit=1)
    assert [(i.index, i.attempts) for i in gamma] == [(2, 2)]


def test_a_rerun_maps_the_failed_task_afresh(make_runner: RunnerFactory, flow_name: str) -> None:
    broken = {3, 5}

    @task(id="process", dependencies=["make"], map_over="files")
    def process(context: Context) -> int:
        if context["item"] in broken:
            raise TaskError(f"item {context['item']} broke", retryable=False)
        return int(context["item"]) + 100

    _flow(flow_name, process)
    runner = make_runner()
    first = runner.execute(flow_name, timeout=30)
    assert first.status == "failed"
    broken.clear()
    runner.rerun(first.execution_id)
    result = runner.wait(first.execution_id, timeout=30)
    assert result.status == "completed", result.error
    assert result.final_context["process"] == [i + 100 for i in range(10)]
    counts = result.tasks["process"].instances
    assert counts is not None and counts.counts == {"completed": 10}


def test_the_http_api_carries_the_instance_counts(
    make_runner: RunnerFactory, flow_name: str
) -> None:
    """A mapped task's counts go out in the API's JSON and come back in the client."""
    import json

    from cloacina.remote.decode import workflow_result
    from cloacina.server.views import result_json

    @task(id="process", dependencies=["make"], map_over="files", allow_partial=True)
    def process(context: Context) -> int:
        if context["item"] == 4:
            raise TaskError("four", retryable=False)
        return 1

    _flow(flow_name, process)
    result = make_runner().execute(flow_name, timeout=30)
    doc = json.loads(json.dumps(result_json(result)))
    assert doc["tasks"]["process"]["instances"] == {
        "total": 10,
        "counts": {"completed": 9, "failed": 1},
        "failed_indexes": [4],
        "failed_more": False,
    }
    assert doc["tasks"]["make"]["instances"] is None
    back = workflow_result(doc)
    assert back.tasks["process"].instances == result.tasks["process"].instances


def test_each_instance_has_its_own_timeout_and_logs(
    make_runner: RunnerFactory, flow_name: str
) -> None:
    import asyncio

    @task(
        id="process",
        dependencies=["make"],
        map_over="files",
        timeout=0.3,
        retry=RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False),
    )
    async def process(context: Context) -> str:
        info = current_task()
        assert info is not None
        print(f"instance {info.map_index} attempt {info.attempt}")
        if info.map_index == 2 and info.attempt == 1:
            await asyncio.sleep(5)  # past its timeout: this attempt is cancelled
        return f"done {context['item']}"

    _flow(flow_name, process, items=["a", "b", "c", "d"])
    runner = make_runner()
    result = runner.execute(flow_name, timeout=30)
    assert result.status == "completed", result.error
    assert result.final_context["process"] == ["done a", "done b", "done c", "done d"]
    eid = result.execution_id
    attempts = runner.get_attempts(eid, "process[2]")
    assert [a.outcome for a in attempts] == ["failed", "completed"]
    assert "timed out after 0.3s" in (attempts[0].error or "")
    assert runner.get_task_logs(eid, "process[2]", 1) == "instance 2 attempt 1\n"
    assert runner.get_task_logs(eid, "process[2]", 2) == "instance 2 attempt 2\n"
    assert runner.get_task_logs(eid, "process[3]") == "instance 3 attempt 1\n"


def test_a_root_task_maps_over_the_run_input(make_runner: RunnerFactory, flow_name: str) -> None:
    @workflow(name=flow_name)
    class _wf:
        @task(id="double", map_over="numbers", max_parallel=2)
        def double(context: Context) -> int:
            assert context["label"] == "x"  # the rest of the input comes along
            return int(context["item"]) * 2

    result = make_runner().execute(flow_name, {"numbers": [1, 2, 3], "label": "x"}, timeout=30)
    assert result.status == "completed", result.error
    assert result.final_context == {"numbers": [1, 2, 3], "label": "x", "double": [2, 4, 6]}


def test_paging_instances_of_an_unknown_run_or_task_is_an_error(
    make_runner: RunnerFactory, flow_name: str
) -> None:
    from cloacina.errors import ExecutionNotFoundError, RequestError, TaskNotFoundError

    @task(id="process", dependencies=["make"], map_over="files")
    def process(context: Context) -> int:
        return 1

    _flow(flow_name, process, items=[1])
    runner = make_runner()
    eid = runner.execute(flow_name, timeout=30).execution_id
    assert [i.index for i in runner.get_map_instances(eid, "process")] == [0]
    assert runner.get_map_instances(eid, "make") == []  # not mapped: no instances
    with pytest.raises(TaskNotFoundError, match="no task 'nope'"):
        runner.get_map_instances(eid, "nope")
    with pytest.raises(ExecutionNotFoundError):
        runner.get_map_instances("no-such-run", "process")
    with pytest.raises(RequestError, match="unknown task status"):
        runner.get_map_instances(eid, "process", status="bogus")
    with pytest.raises(RequestError, match="limit"):
        runner.get_map_instances(eid, "process", limit=0)
