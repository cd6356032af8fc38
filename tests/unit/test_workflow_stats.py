"""Workflow statistics computed from rows (no database): percentiles, queue waits, failure
rates and the critical path."""

from __future__ import annotations

import json

import pytest

from cloacina.service.stats import compute_stats, critical_path, percentile
from cloacina.store.stats import AttemptTimes, RunTimes, TaskTimes

# A diamond: a -> (b, c) -> d.
GRAPH = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}


def _task(
    run: str,
    tid: str,
    start: float | None,
    end: float | None,
    status: str = "completed",
    attempt: int = 1,
    stored: bool = True,
) -> TaskTimes:
    deps = json.dumps(list(GRAPH[tid])) if stored else None
    index = list(GRAPH).index(tid)
    return TaskTimes(run, tid, index, status, attempt, start, end, deps)


def _diamond(run: str, t0: float, b_time: float, c_time: float) -> list[TaskTimes]:
    """A run created at t0 whose tasks start 0.1 s after they become ready."""
    a_end = t0 + 0.1 + 1.0
    b_end = a_end + 0.1 + b_time
    c_end = a_end + 0.1 + c_time
    d_start = max(b_end, c_end) + 0.1
    return [
        _task(run, "a", t0 + 0.1, a_end),
        _task(run, "b", a_end + 0.1, b_end),
        _task(run, "c", a_end + 0.1, c_end),
        _task(run, "d", d_start, d_start + 0.5),
    ]


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile(list(map(float, range(1, 101))), 95) == pytest.approx(95.05)
    assert percentile([5.0, 1.0, 3.0], 0) == 1.0 and percentile([5.0, 1.0, 3.0], 100) == 5.0


def test_critical_path_follows_the_dependency_that_ended_last() -> None:
    rows = {t.task_id: t for t in _diamond("r", 0.0, b_time=3.0, c_time=1.0)}
    assert critical_path(rows, GRAPH) == ["a", "b", "d"]
    rows = {t.task_id: t for t in _diamond("r", 0.0, b_time=1.0, c_time=3.0)}
    assert critical_path(rows, GRAPH) == ["a", "c", "d"]
    assert critical_path({}, GRAPH) == []


def test_stats_report_the_most_common_path_waits_and_failures() -> None:
    runs = [RunTimes(f"r{i}", "completed", 100.0 * i, 100.0 * i, 100.0 * i + 6) for i in range(5)]
    tasks: list[TaskTimes] = []
    for i, run in enumerate(runs):
        slow_b = i != 4  # in one run of five, c is the slow one
        tasks += _diamond(run.id, run.created_at, 3.0 if slow_b else 1.0, 1.0 if slow_b else 3.0)
    stats = compute_stats("diamond", runs[::-1], tasks, [], {})
    assert stats.runs == 5 and stats.completed == 5 and stats.failure_rate == 0.0
    assert stats.critical_path == ["a", "b", "d"]
    assert stats.critical_path_runs == 4
    assert stats.critical_path_seconds == pytest.approx(1.0 + 3.0 + 0.5)
    by_id = {t.task_id: t for t in stats.tasks}
    assert [t.task_id for t in stats.tasks] == ["a", "b", "c", "d"]
    assert by_id["b"].duration_p50 == pytest.approx(3.0)
    assert by_id["c"].duration_p50 == pytest.approx(1.0)
    for t in stats.tasks:  # every task started 0.1 s after it became ready
        assert t.wait_p50 == pytest.approx(0.1) and t.wait_p95 == pytest.approx(0.1)
    assert by_id["b"].critical_runs == 4 and by_id["c"].critical_runs == 1
    assert by_id["a"].critical_runs == 5
    assert stats.duration_p50 == pytest.approx(6.0)


def test_retries_count_as_attempts_and_a_final_failure_in_the_failure_rate() -> None:
    runs = [RunTimes("r0", "failed", 0.0, 0.0, 10.0), RunTimes("r1", "completed", 20.0, 20.0, 30.0)]
    tasks = [
        _task("r0", "a", 0.5, 1.0),
        _task("r0", "b", 4.0, 5.0, status="failed", attempt=2),  # failed twice
        _task("r0", "c", 1.5, 2.0),
        _task("r0", "d", None, 5.0, status="skipped"),
        _task("r1", "a", 20.5, 21.0),
        _task("r1", "b", 24.0, 25.0, attempt=2),  # failed once, then completed
        _task("r1", "c", 21.5, 22.0),
        _task("r1", "d", 25.5, 26.0),
    ]
    attempts = [
        AttemptTimes("r0", "b", 1, "failed", 1.5, 3.5),  # first attempt: 1.0 - 1.5 wait
        AttemptTimes("r0", "b", 2, "failed", 4.0, 5.0),
        AttemptTimes("r1", "b", 1, "failed", 21.5, 22.5),
        AttemptTimes("r1", "d", 1, "lost", 25.1, 25.4),  # taken back: not a duration
    ]
    stats = compute_stats("diamond", runs[::-1], tasks, attempts, {})
    assert stats.runs == 2 and stats.failed == 1 and stats.failure_rate == 0.5
    b = next(t for t in stats.tasks if t.task_id == "b")
    assert (b.runs, b.completed, b.failed, b.attempts) == (2, 1, 1, 4)
    assert b.failure_rate == 0.5
    assert b.duration_p50 == pytest.approx(1.0)  # durations 2.0, 1.0, 1.0, 1.0
    assert b.wait_p50 == pytest.approx(0.5)  # from a's end to the first attempt's start
    d = next(t for t in stats.tasks if t.task_id == "d")
    assert (d.runs, d.skipped, d.attempts) == (2, 1, 1)
    assert d.wait_p50 == pytest.approx(25.1 - 25.0)  # its first (lost) attempt's start


def test_runs_without_a_stored_graph_take_the_workflows() -> None:
    runs = [RunTimes("old", "completed", 0.0, 0.0, 6.0)]
    tasks = [
        TaskTimes(
            t.execution_id, t.task_id, t.task_index, t.status, 1, t.started_at, t.finished_at, None
        )
        for t in _diamond("old", 0.0, b_time=1.0, c_time=3.0)
    ]
    assert compute_stats("d", runs, tasks, [], GRAPH).critical_path == ["a", "c", "d"]
    # Without any graph every task is a root: the path is the task that ended last.
    assert compute_stats("d", runs, tasks, [], {}).critical_path == ["d"]


def test_to_dict_is_plain_json() -> None:
    runs = [RunTimes("r", "completed", 0.0, 0.0, 6.0)]
    stats = compute_stats("diamond", runs, _diamond("r", 0.0, 1.0, 2.0), [], {})
    data = json.loads(json.dumps(stats.to_dict()))
    assert data["first_run_at"] == "1970-01-01T00:00:00Z"
    assert data["critical_path"] == ["a", "c", "d"]
    assert data["tasks"][0]["task_id"] == "a"
    from cloacina.service.stats import WorkflowStats

    assert WorkflowStats.from_dict(data) == stats
