"""A drop-in for ``cloaca``, the Python bindings of the Rust Cloacina engine.

``import cloacina.compat.cloaca as cloaca`` and code written for cloaca (``WorkflowBuilder``,
``@cloaca.task``, ``DefaultRunner(url).execute(name, Context(...))``, cron and trigger
methods) runs on this engine. Each name is translated onto Cloacina's own API (its
``Task``, ``Workflow`` catalog, ``DefaultRunner``, schedules and triggers); where cloaca's
semantics differ (a task returning ``None`` keeps its input, lists merge across
dependencies, ``final_context`` is the last completed task's output, 3 attempts by
default, callbacks on every failed attempt) this package carries the difference and
Cloacina's own API keeps its rules. See docs/coming-from-cloaca.md.
"""

from __future__ import annotations

from cloacina.compat.cloaca.config import DefaultRunnerConfig
from cloacina.compat.cloaca.context import Context
from cloacina.compat.cloaca.graphs import ComputationGraphBuilder, node, reactor
from cloacina.compat.cloaca.retry import (
    BackoffStrategy,
    RetryCondition,
    RetryPolicy,
    RetryPolicyBuilder,
)
from cloacina.compat.cloaca.rules import (
    all_of,
    always,
    any_of,
    context_value,
    none_of,
    task_failed,
    task_skipped,
    task_success,
)
from cloacina.compat.cloaca.runner import DefaultRunner, PipelineResult, WorkflowResult
from cloacina.compat.cloaca.tasks import TaskHandle, task
from cloacina.compat.cloaca.triggers import TriggerResult, trigger
from cloacina.compat.cloaca.workflow import (
    Workflow,
    WorkflowBuilder,
    register_workflow_constructor,
)

__all__ = [
    "BackoffStrategy",
    "ComputationGraphBuilder",
    "Context",
    "DefaultRunner",
    "DefaultRunnerConfig",
    "PipelineResult",
    "RetryCondition",
    "RetryPolicy",
    "RetryPolicyBuilder",
    "TaskHandle",
    "TriggerResult",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowResult",
    "all_of",
    "always",
    "any_of",
    "context_value",
    "node",
    "none_of",
    "reactor",
    "register_workflow_constructor",
    "task",
    "task_failed",
    "task_skipped",
    "task_success",
    "trigger",
]
