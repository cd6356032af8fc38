"""The document a run's page draws: layers, the graph (grouped past the node limit), the
Gantt rows on one time axis with their waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cloacina.model.status import (
    ExecutionStatus,
    MapSummary,
    TaskResult,
    TaskStatus,
    WorkflowResult,
)
from cloacina.server.ui.run_state import MAX_NODES, bars, graph_of, layers, run_state
from cloacina.service import TaskAttempt

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run_of(ids: list[str], status: TaskStatus = TaskStatus.PENDING) -> WorkflowResult:
    tasks = {i: TaskResult(i, status, 0) for i in ids}
    return WorkflowResult("e", "w", "v", ExecutionStatus.RUNNING, tasks=tasks)


def test_layers_are_longest_paths() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["a", "d"], "x": ["gone"]}
    assert layers(deps) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3, "x": 0}


def test_layers_of_a_long_chain_need_no_deep_recursion() -> None:
    deps = {f"t{i}": ([f"t{i - 1}"] if i else []) for i in range(50_000)}
    assert layers(deps)["t49999"] == 49_999


@given(st.lists(st.lists(st.integers(0, 30), max_size=4), min_size=1, max_size=31))
def test_every_task_sits_right_of_what_it_depends_on(parents: list[list[int]]) -> None:
    # Task i may only depend on tasks before it: a DAG, as every stored graph is.
    deps = {f"t{i}": sorted({f"t{p}" for p in ps if p < i}) for i, ps in enumerate(parents)}
    layer = layers(deps)
    for task, sources in deps.items():
        assert all(layer[s] < layer[task] for s in sources)
        assert layer[task] == (1 + max((layer[s] for s in sources), default=-1))


def test_small_graph_has_every_task_and_edge() -> None:
    statuses = {"a": "completed", "b": "running", "c": "pending"}
    graph, member = graph_of(statuses, {"b": ["a"], "c": ["b", "gone"]})
    assert member is None
    assert graph["nodes"] == [{"id": t, "status": s} for t, s in statuses.items()]
    assert graph["edges"] == [["a", "b"], ["b", "c"]]


def test_big_graph_is_grouped_by_bands_of_layers() -> None:
    # A fan-out of 2,000 between two single tasks: three layers, three groups.
    wide = {f"m{i}": ["root"] for i in range(2000)}
    deps: dict[str, list[str]] = {"root": [], **wide, "end": list(wide)}
    statuses = dict.fromkeys(deps, "pending")
    graph, member = graph_of(statuses, deps)
    assert [g["size"] for g in graph["groups"]] == [1, 2000, 1]
    assert graph["groups"][1]["id"] == "layer 2"
    assert member is not None and member[0] == 0 and member[-1] == 2 and set(member[1:-1]) == {1}
    names = [g["id"] for g in graph["groups"]]
    assert graph["edges"] == [[names[0], names[1]], [names[1], names[2]]]

    # A chain of 10,000: bands of layers, at most 60 groups, edges between neighbours only.
    chain = {f"t{i}": ([f"t{i - 1}"] if i else []) for i in range(10_000)}
    graph, member = graph_of(dict.fromkeys(chain, "completed"), chain)
    assert len(graph["groups"]) <= 60 and sum(g["size"] for g in graph["groups"]) == 10_000
    assert graph["groups"][0]["id"].startswith("layers 1-")
    assert len(graph["edges"]) == len(graph["groups"]) - 1
    assert member is not None and member == sorted(member)


def test_gantt_rows_share_an_axis_with_their_waits() -> None:
    attempts = [
        TaskAttempt("e", "a", 1, "completed", started_at=at(1), finished_at=at(2)),
        TaskAttempt("e", "b", 1, "failed", started_at=at(3), finished_at=at(4)),
        TaskAttempt("e", "b", 2, "running", started_at=at(6)),
        TaskAttempt("e", "c", 1, "pending"),  # never started: no row
    ]
    chart = bars(attempts, ready={"a": at(0), "b": at(2)}, now=at(8))
    assert chart["span"] == 8.0
    assert chart["rows"] == [
        ["a", 1, "completed", 0.0, 1.0, 2.0],
        ["b", 1, "failed", 2.0, 3.0, 4.0],  # queued after a, its dependency, ended
        ["b", 2, "running", 4.0, 6.0, None],  # the retry's backoff; runs until now
    ]
    assert bars([], {}, at(0)) == {"span": 0.0, "rows": []}


def test_run_state_lists_tasks_with_short_errors() -> None:
    run = run_of(["a", "b"], TaskStatus.FAILED)
    run.tasks["b"] = TaskResult("b", TaskStatus.FAILED, 3, error="x" * 500)
    doc = run_state(run, {"b": ["a"]}, [], now=at(0))
    # id, status, attempts, error (cut), a mapped task's instances (None: not mapped)
    assert doc["tasks"] == [["a", "failed", 0, None, None], ["b", "failed", 3, "x" * 200, None]]
    mapped = MapSummary(3, {"completed": 2, "failed": 1}, (1,))
    run.tasks["b"] = TaskResult("b", TaskStatus.FAILED, 1, instances=mapped)
    row = run_state(run, {"b": ["a"]}, [], now=at(0))["tasks"][1]
    assert row[4] == "3 instances: 2 completed, 1 failed (failed indexes 1)"
    assert doc["status"] == "running" and doc["terminal"] is False
    assert doc["member"] is None and len(doc["graph"]["nodes"]) == 2
    assert len(run_state(run_of([f"t{i}" for i in range(MAX_NODES + 1)]), {}, [])["member"]) == (
        MAX_NODES + 1
    )
