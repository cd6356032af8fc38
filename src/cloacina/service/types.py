"""The values the service layer returns to every face (CLI, HTTP API, ``cloacina.Client``).

Frozen dataclasses of plain, JSON-friendly fields; times are aware ``datetime``\\ s in UTC
(as in :class:`~cloacina.model.status.WorkflowResult`), ``None`` when not known yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cloacina.model.status import WorkflowResult


@dataclass(frozen=True)
class ExecutionPage:
    """One page of runs, newest first (by creation, then id). ``next_cursor`` fetches the
    page after it (``None``: this is the last page); the cursor is opaque."""

    items: list[WorkflowResult]
    next_cursor: str | None = None


@dataclass(frozen=True)
class TaskAttempt:
    """One attempt of one task of a run. ``outcome`` is ``completed``, ``failed`` (retried or
    not), ``skipped``, ``lost`` (its worker stopped responding and the task was taken back)
    or ``running`` (the attempt under way now, ``finished_at`` still ``None``)."""

    execution_id: str
    task_id: str
    attempt: int
    outcome: str
    recovery: int = 0
    worker_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    traceback: str | None = None
    skip_reason: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from the attempt's start to its end (``None`` until it ended)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class ExecutionEvent:
    """One entry of a run's event log. ``seq`` grows with every event of the database (a
    stream resumes after the last ``seq`` it saw); ``type`` is e.g. ``task_started``,
    ``task_failed``, ``execution_completed``; ``detail`` is the event's JSON object."""

    seq: int
    execution_id: str
    type: str
    at: datetime
    task_id: str | None = None
    attempt: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerInfo:
    """A worker process as it last reported itself. ``state`` is ``running``, ``stopped``,
    or ``silent`` (recorded as running but not heard of for a while: it probably died);
    ``status`` is what its row says. ``running_tasks`` counts the tasks it holds now."""

    id: str
    host: str
    pid: int
    state: str
    status: str
    started_at: datetime
    last_heartbeat_at: datetime
    running_tasks: int
    max_tasks: int
    version: str
    stopped_at: datetime | None = None


@dataclass(frozen=True)
class PackageDetail:
    """A registered package version with its manifest (the fields of
    :class:`~cloacina.registry.registry.PackageInfo`, plus the manifest as a dict)."""

    id: str
    package: str
    version: str
    sha256: str
    workflows: list[str]
    signer: str | None
    registered_at: datetime
    default: bool
    promoted: bool
    manifest: dict[str, Any]


@dataclass(frozen=True)
class TaskInfo:
    """A task of a workflow's graph: its id and the ids it depends on."""

    id: str
    dependencies: list[str]


@dataclass(frozen=True)
class WorkflowInfo:
    """A workflow a runner can execute: its name, version, package (``embedded`` for one
    defined in the process), description and task graph (tasks in execution order)."""

    name: str
    version: str
    package: str
    description: str
    tasks: list[TaskInfo]


@dataclass(frozen=True)
class TenantInfo:
    """A tenant of a database: its name and where it lives (a SQLite file, or a PostgreSQL
    schema named with the database's URL without its password)."""

    name: str
    location: str


__all__ = [
    "ExecutionEvent",
    "ExecutionPage",
    "PackageDetail",
    "TaskAttempt",
    "TaskInfo",
    "TenantInfo",
    "WorkerInfo",
    "WorkflowInfo",
]
