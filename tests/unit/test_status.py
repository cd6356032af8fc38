"""ExecutionStatus / TaskStatus string enums and the result dataclasses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloacina import ExecutionStatus, TaskResult, TaskStatus, WorkflowResult
from cloacina.model.status import to_datetime


def test_execution_status_values_are_plain_words() -> None:
    assert [s.value for s in ExecutionStatus] == [
        "pending",
        "running",
        "paused",
        "completed",
        "failed",
        "cancelled",
    ]
    assert str(ExecutionStatus.COMPLETED) == "completed"
    assert f"{ExecutionStatus.FAILED}" == "failed"
    assert ExecutionStatus.COMPLETED == "completed"  # type: ignore[comparison-overlap]  # StrEnum == str
    assert ExecutionStatus("paused") is ExecutionStatus.PAUSED


def test_task_status_values_are_plain_words() -> None:
    assert {s.value for s in TaskStatus} == {
        "pending",
        "ready",
        "running",
        "completed",
        "failed",
        "skipped",
    }
    assert str(TaskStatus.SKIPPED) == "skipped"
    assert TaskStatus.READY == "ready"  # type: ignore[comparison-overlap]  # StrEnum == str


def test_terminal_states() -> None:
    assert {s for s in ExecutionStatus if s.is_terminal} == {
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
    }
    assert {s for s in TaskStatus if s.is_terminal} == {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.SKIPPED,
    }


def test_results_durations_and_success() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    end = start + timedelta(seconds=2.5)
    done = TaskResult("t", TaskStatus.COMPLETED, 1, started_at=start, finished_at=end)
    assert done.duration == 2.5
    assert TaskResult("t", TaskStatus.PENDING, 0).duration is None
    result = WorkflowResult("e", "w", "v", ExecutionStatus.COMPLETED, started_at=start)
    assert result.succeeded
    assert result.duration is None
    assert result.final_context == {}
    assert not WorkflowResult("e", "w", "v", ExecutionStatus.FAILED).succeeded


def test_to_datetime() -> None:
    assert to_datetime(None) is None
    assert to_datetime(0.0) == datetime(1970, 1, 1, tzinfo=UTC)
