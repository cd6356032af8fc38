"""The pure model: tasks, workflows, contexts, retry policies, trigger rules. No I/O here."""

from __future__ import annotations

from cloacina.model.context import Context, deep_merge
from cloacina.model.graph import Graph, build_graph
from cloacina.model.namespace import TaskNamespace
from cloacina.model.retry import RetryPolicy
from cloacina.model.rules import TriggerRule
from cloacina.model.task import Task, task
from cloacina.model.workflow import Workflow, catalog, packaged_workflow, workflow, workflow_of

__all__ = [
    "Context",
    "Graph",
    "RetryPolicy",
    "Task",
    "TaskNamespace",
    "TriggerRule",
    "Workflow",
    "build_graph",
    "catalog",
    "deep_merge",
    "packaged_workflow",
    "task",
    "workflow",
    "workflow_of",
]
