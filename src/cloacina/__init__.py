"""Cloacina: embedded-first, durable workflow orchestration for Python.

Define a DAG of tasks with ``@workflow``/``@task``, run it with ``DefaultRunner``; every state
change is stored (SQLite by default), so a run survives a crash and resumes where it stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloacina._about import __version__
from cloacina.errors import (
    AuthenticationError,
    CloacinaError,
    ConflictError,
    ContextError,
    CycleError,
    ExecutionNotFoundError,
    ExecutionTimeoutError,
    InvalidScheduleError,
    InvalidStateError,
    NotFoundError,
    PackageError,
    PermissionDeniedError,
    SettingsError,
    StoreError,
    StoreUnavailableError,
    TaskError,
    TaskTimeoutError,
    UnavailableError,
    WorkflowDefinitionError,
    WorkflowNameConflictError,
    WorkflowNotFoundError,
)
from cloacina.model.context import Context
from cloacina.model.cron import CronSchedule, CronSpec, cron
from cloacina.model.namespace import TaskNamespace
from cloacina.model.retry import RetryPolicy
from cloacina.model.status import ExecutionStatus, TaskResult, TaskStatus, WorkflowResult
from cloacina.model.subworkflow import subworkflow
from cloacina.model.task import Task, task
from cloacina.model.trigger import Trigger, trigger
from cloacina.model.workflow import Workflow, packaged_workflow, workflow
from cloacina.packaging.command import command_task
from cloacina.settings import Settings
from cloacina.taskinfo import TaskInfo, current_task

if TYPE_CHECKING:
    from cloacina.client import Client
    from cloacina.runner import DefaultRunner
    from cloacina.service.schedules import Schedule, ScheduleFire


def __getattr__(name: str) -> Any:
    # The runner pulls in SQLAlchemy; a package's worker process imports `cloacina` for the
    # decorators only, so the runner is imported on first use.
    if name == "DefaultRunner":
        from cloacina.runner import DefaultRunner

        return DefaultRunner
    if name in ("Schedule", "ScheduleFire"):  # the service layer: imported on first use
        from cloacina.service import schedules

        return getattr(schedules, name)
    if name == "Client":  # needs httpx (the `client` extra): imported on first use too
        from cloacina.client import Client

        return Client
    raise AttributeError(f"module 'cloacina' has no attribute {name!r}")


__all__ = [
    "AuthenticationError",
    "Client",
    "CloacinaError",
    "ConflictError",
    "Context",
    "ContextError",
    "CronSchedule",
    "CronSpec",
    "CycleError",
    "DefaultRunner",
    "ExecutionNotFoundError",
    "ExecutionStatus",
    "ExecutionTimeoutError",
    "InvalidScheduleError",
    "InvalidStateError",
    "NotFoundError",
    "PackageError",
    "PermissionDeniedError",
    "RetryPolicy",
    "Schedule",
    "ScheduleFire",
    "Settings",
    "SettingsError",
    "StoreError",
    "StoreUnavailableError",
    "Task",
    "TaskError",
    "TaskInfo",
    "TaskNamespace",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "Trigger",
    "UnavailableError",
    "Workflow",
    "WorkflowDefinitionError",
    "WorkflowNameConflictError",
    "WorkflowNotFoundError",
    "WorkflowResult",
    "__version__",
    "command_task",
    "cron",
    "current_task",
    "packaged_workflow",
    "subworkflow",
    "task",
    "trigger",
    "workflow",
]
