"""The service layer: the queries and commands every face (CLI, HTTP API, web UI) needs.

Runs, attempts, events, workers, packages and workflows are methods of
:class:`~cloacina.runner.DefaultRunner` (mixins defined here, e.g.
:class:`~cloacina.service.executions.ExecutionService`); tenants and the database's schema,
which exist before any runner, are functions of :mod:`cloacina.service.tenants`. The values
they return are the frozen dataclasses of :mod:`cloacina.service.types`. Faces call these,
never :mod:`cloacina.store`.

API keys (:mod:`cloacina.service.keys`) and the audit log (:mod:`cloacina.service.audit`)
live in the default tenant's database; a face says who acts with
:func:`~cloacina.service.audit.acting_as`.
"""

from __future__ import annotations

from cloacina.service.alerts import (
    Alert,
    AlertChannel,
    AlertDelivery,
    AlertTestResult,
    QueuedAlert,
)
from cloacina.service.audit import Actor, AuditEntry, AuditPage, acting_as, current_actor
from cloacina.service.backfills import Backfill
from cloacina.service.keys import ApiKeyInfo, CreatedApiKey, Role, allows
from cloacina.service.logs import TaskLog, TaskLogChunk
from cloacina.service.schedules import Schedule, ScheduleFire
from cloacina.service.stats import TaskStats, WorkflowStats
from cloacina.service.triggers import TriggerInfo
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
    "Actor",
    "Alert",
    "AlertChannel",
    "AlertDelivery",
    "AlertTestResult",
    "ApiKeyInfo",
    "AuditEntry",
    "AuditPage",
    "Backfill",
    "CreatedApiKey",
    "ExecutionEvent",
    "ExecutionPage",
    "PackageDetail",
    "QueuedAlert",
    "Role",
    "Schedule",
    "ScheduleFire",
    "TaskAttempt",
    "TaskInfo",
    "TaskLog",
    "TaskLogChunk",
    "TaskStats",
    "TenantInfo",
    "TriggerInfo",
    "WorkerInfo",
    "WorkflowInfo",
    "WorkflowStats",
    "acting_as",
    "allows",
    "current_actor",
]
