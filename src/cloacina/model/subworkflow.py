"""Sub-workflows (DESIGN §11): a task that runs another workflow as a child execution.

``etl = subworkflow(id="etl", workflow="etl_child", dependencies=[prepare])`` declares a task
whose "body" is a child run of ``etl_child`` started with the task's input context. The task
completes with the child's final context as its output, or fails with the child's error (its
retry policy applies: each retry starts a new child). The engine runs it without holding a
worker slot (see engine/subworkflows.py).

A workflow that names itself through sub-workflows is refused when it is decorated, as far
as the workflows it names are known in the process; where they are not, the depth limit
(:data:`MAX_DEPTH`) stops the recursion at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cloacina.errors import TaskError, WorkflowDefinitionError
from cloacina.model.retry import RetryPolicy
from cloacina.model.rules import TriggerRule
from cloacina.model.task import Task

if TYPE_CHECKING:
    from cloacina.model.workflow import Workflow, WorkflowCatalog

#: How deep sub-workflows may nest at run time (a top-level run is depth 0).
MAX_DEPTH = 10


def _body(task_id: str, workflow: str) -> Callable[..., Any]:
    def run_subworkflow(context: Any) -> None:
        raise TaskError(
            f"task {task_id!r} is a sub-workflow (it runs workflow {workflow!r} as a child "
            "execution): run its parent workflow with a runner, or run "
            f"{workflow!r} itself to test it",
            retryable=False,
        )

    run_subworkflow.__name__ = task_id
    return run_subworkflow


def subworkflow(
    *,
    id: str,
    workflow: str,
    dependencies: Iterable[str | Task | Callable[..., Any]] = (),
    retry: RetryPolicy | None = None,
    trigger_rule: TriggerRule | str | None = None,
    description: str | None = None,
) -> Task:
    """A task that runs workflow ``workflow`` (its name, as ``schedule_workflow`` takes it)
    as a child execution with the task's input context; the task's output is the child's
    final context. Put it in a ``@workflow`` class body like a task: ``etl = subworkflow(
    id="etl", workflow="etl_child", dependencies=[prepare])``."""
    if not isinstance(workflow, str) or not workflow:
        raise WorkflowDefinitionError(
            f"subworkflow {id!r}: workflow= must name the workflow to run as a child "
            f"(a non-empty string), got {workflow!r}"
        )
    task = Task(
        _body(id, workflow),
        id=id,
        dependencies=dependencies,
        retry=retry,
        trigger_rule=trigger_rule,
        description=description if description is not None else f"runs workflow {workflow!r}",
    )
    task.subworkflow = workflow
    return task


def check_recursion(wf: Workflow, catalog: WorkflowCatalog) -> None:
    """Refuse ``wf`` if it names itself through sub-workflows known in ``catalog`` (a
    :class:`WorkflowDefinitionError` naming the cycle)."""
    if not any(t.subworkflow for t in wf.tasks.values()):
        return

    def named(w: Workflow) -> list[str]:
        return [t.subworkflow for t in w.tasks.values() if t.subworkflow]

    # Depth-first over the names reachable from wf, with the path that reached each.
    stack: list[tuple[str, list[str]]] = [(n, [wf.name, n]) for n in reversed(named(wf))]
    seen: set[str] = set()
    while stack:
        name, path = stack.pop()
        if name == wf.name:
            raise WorkflowDefinitionError(
                f"workflow {wf.name!r} runs itself through sub-workflows: "
                f"{' -> '.join(path)}. A workflow may not name itself, directly or through "
                "others: remove one of these subworkflow(...) tasks"
            )
        if name in seen:
            continue
        seen.add(name)
        child = catalog.find(name)
        if child is not None:
            stack.extend((n, [*path, n]) for n in reversed(named(child)))
