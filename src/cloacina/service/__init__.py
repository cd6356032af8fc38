"""The service layer: the queries and commands every face (CLI, HTTP API, web UI) needs.

Runs, attempts, events, workers, packages and workflows are methods of
:class:`~cloacina.runner.DefaultRunner` (mixins defined here, e.g.
:class:`~cloacina.service.executions.ExecutionService`); tenants and the database's schema,
which exist before any runner, are functions of :mod:`cloacina.service.tenants`. The values
they return are the frozen dataclasses of :mod:`cloacina.service.types`. Faces call these,
never :mod:`cloacina.store`.
"""

from __future__ import annotations

from cloacina.service.types import (
    ExecutionEvent,
    ExecutionPage,
    PackageDetail,
    TaskAttempt,
    TaskInfo,
    TenantInfo,
    WorkerInfo,
    WorkflowInfo,
)

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
