"""Statuses and results of workflow executions and their tasks."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class ExecutionStatus(enum.StrEnum):
    """The state of a workflow execution (a run)."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (
            ExecutionStatus.COMPLETED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
        )


class TaskStatus(enum.StrEnum):
    """The state of one task of a run."""

    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED)


TERMINAL_EXECUTION = frozenset({"completed", "failed", "cancelled"})
#: The statuses a task ends in (its dependents count it as settled).
TERMINAL_TASK = frozenset({"completed", "failed", "skipped"})


def to_datetime(epoch: float | None) -> datetime | None:
    """A stored epoch time as an aware UTC datetime."""
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True)
class MapSummary:
    """A mapped task's instances (``map_over``): how many, how many in each status, and the
    first indexes that failed (``failed_more``: more failed than are listed)."""

    total: int
    counts: dict[str, int] = field(default_factory=dict)
    failed_indexes: tuple[int, ...] = ()
    failed_more: bool = False

    def describe(self) -> str:
        """``"100000 instances: 99990 completed, 10 failed (indexes 3, 7, ...)"``."""
        order = ("completed", "failed", "running", "ready", "pending", "skipped")
        parts = [f"{self.counts[s]} {s}" for s in order if self.counts.get(s)]
        text = f"{self.total} instances" + (": " + ", ".join(parts) if parts else "")
        if self.failed_indexes:
            more = ", ..." if self.failed_more else ""
            text += f" (failed indexes {', '.join(map(str, self.failed_indexes))}{more})"
        return text


@dataclass(frozen=True)
class MapInstance:
    """One instance of a mapped task, as a page of them lists it."""

    index: int
    task_id: str
    status: TaskStatus
    attempts: int
    max_attempts: int
    error: str | None = None
    worker_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class TaskResult:
    """How one task of a run went."""

    task_id: str
    status: TaskStatus
    attempts: int
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    skip_reason: str | None = None
    recoveries: int = 0
    traceback: str | None = None
    #: How many attempts the task's retry policy allows (``None`` when not known).
    max_attempts: int | None = None
    #: The worker holding the task while it runs (``None`` otherwise).
    worker_id: str | None = None
    #: When a failed task waiting to be retried may run again (``None`` otherwise).
    retry_at: datetime | None = None
    #: A mapped task's instances, summarised (``None``: not a mapped task, or its instances
    #: are not made yet). Page through them with ``runner.get_map_instances``.
    instances: MapSummary | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from the last attempt's start to the task's end."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class WorkflowResult:
    """A workflow execution: its status, final context and per-task results."""

    execution_id: str
    workflow_name: str
    workflow_version: str
    status: ExecutionStatus
    final_context: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    package: str = "embedded"
    tenant: str = "public"
    #: When the run was submitted (it starts when a worker takes its first task).
    created_at: datetime | None = None
    #: How many tasks the run has, how many have settled and how many failed (also set in
    #: a list's summaries, which carry no per-task detail).
    tasks_total: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    #: The context the run started with (``None`` in a list's summaries).
    input_context: dict[str, Any] | None = None
    #: Sub-workflows (DESIGN §11): the ids of the child runs this run's sub-workflow tasks
    #: started (oldest first), and the run and task that started this one (``None``: a
    #: top-level run). Not set in a list's summaries.
    children: list[str] = field(default_factory=list)
    parent_execution_id: str | None = None
    parent_task_id: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def succeeded(self) -> bool:
        return self.status == ExecutionStatus.COMPLETED
