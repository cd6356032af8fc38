"""cloaca's ``WorkflowBuilder``, ``Workflow`` and ``register_workflow_constructor``.

A workflow is registered as a Cloacina :class:`~cloacina.model.workflow.Workflow` in the
process's catalog (where ``@cloacina.workflow`` puts its own), so any Cloacina runner of
the process executes it by name.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal

from cloacina.compat.cloaca.tasks import TaskDef, lookup, namespace_of, tasks_in
from cloacina.errors import CloacinaError
from cloacina.model.workflow import Workflow as _Workflow
from cloacina.model.workflow import catalog

Scope = tuple[str, str, str]
_local = threading.local()


def _stack() -> list[Scope]:
    stack: list[Scope] | None = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def current_scope() -> Scope | None:
    """The innermost ``with WorkflowBuilder(...)`` of this thread (tenant, package, name)."""
    stack = _stack()
    return stack[-1] if stack else None


def _check_graph(name: str, defs: list[TaskDef]) -> None:
    """cloaca's validation: not empty, dependencies known, no cycle."""
    if not defs:
        raise ValueError("Workflow cannot be empty")
    by_id = {d.id: d for d in defs}
    prefix = defs[0].namespace.rsplit("::", 1)[0]
    for d in defs:
        for dep in d.dependencies:
            if dep not in by_id:
                raise ValueError(
                    f"Missing dependency: task '{d.namespace}' depends on '{prefix}::{dep}' "
                    "which is not registered"
                )
    state: dict[str, int] = {}
    for start in by_id:
        path: list[str] = []
        todo: list[tuple[str, int]] = [(start, 0)]
        while todo:
            node, i = todo.pop()
            if i == 0:
                if state.get(node) == 2:
                    continue
                if state.get(node) == 1:
                    cycle = [*path[path.index(node) :], node]
                    raise ValueError(f"Circular dependency detected: {cycle}")
                state[node] = 1
                path.append(node)
            deps = by_id[node].dependencies
            if i < len(deps):
                todo.append((node, i + 1))
                todo.append((deps[i], 0))
            else:
                state[node] = 2
                path.pop()


class Workflow:
    """A built workflow: ``name``, ``description``, ``version``, its topology."""

    def __init__(self) -> None:
        raise TypeError("Workflow has no constructor: use WorkflowBuilder(...).build()")

    @classmethod
    def _make(
        cls, name: str, tenant: str, description: str, tags: dict[str, str], defs: list[TaskDef]
    ) -> Workflow:
        wf = object.__new__(cls)
        wf._name = name
        wf._tenant = tenant
        wf._description = description
        wf._tags = dict(tags)
        wf._defs = list(defs)
        try:
            _check_graph(name, wf._defs)
            wf._inner = _Workflow.from_tasks(
                name, [d.to_task() for d in wf._defs], description=description
            )
        except (ValueError, CloacinaError) as exc:
            raise ValueError(f"Workflow validation failed: {exc}") from None
        return wf

    _name: str
    _tenant: str
    _description: str
    _tags: dict[str, str]
    _defs: list[TaskDef]
    _inner: _Workflow

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    @property
    def version(self) -> str:
        """A hash of the tasks and their dependencies, name, tenant, description and tags."""
        shape = {
            "tasks": sorted(
                [d.namespace, sorted(self._full(dep) for dep in d.dependencies)] for d in self._defs
            ),
            "name": self._name,
            "tenant": self._tenant,
            "description": self._description,
            "tags": sorted(self._tags.items()),
        }
        digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()
        return digest[:16]

    def _full(self, task_id: str) -> str:
        return f"{self._defs[0].namespace.rsplit('::', 1)[0]}::{task_id}"

    def topological_sort(self) -> list[str]:
        """The tasks' full namespaces in an order where dependencies come first."""
        return [self._full(t) for t in self._inner.graph.order]

    def get_execution_levels(self) -> list[list[str]]:
        """The tasks by level: each level depends only on earlier ones."""
        level: dict[str, int] = {}
        for t in self._inner.graph.order:
            deps = self._inner.graph.dependencies[t]
            level[t] = 1 + max((level[d] for d in deps), default=-1)
        out: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for t in self._inner.graph.order:
            out[level[t]].append(self._full(t))
        return out

    def get_roots(self) -> list[str]:
        return [self._full(t) for t in self._inner.graph.roots]

    def get_leaves(self) -> list[str]:
        return [self._full(t) for t in self._inner.graph.leaves]

    def validate(self) -> None:
        """Raise ``ValueError("Workflow validation failed: ...")`` for an invalid workflow."""
        try:
            _check_graph(self._name, self._defs)
        except ValueError as exc:
            raise ValueError(f"Workflow validation failed: {exc}") from None

    def _register(self, name: str | None = None) -> None:
        """Make the workflow runnable under ``name`` (default: its own) by any runner."""
        inner = self._inner
        if name is not None and name != inner.name:
            try:
                inner = _Workflow.from_tasks(
                    name, [d.to_task() for d in self._defs], description=self._description
                )
            except CloacinaError as exc:
                raise ValueError(f"Workflow validation failed: {exc}") from None
        catalog.add(inner)

    def __repr__(self) -> str:
        return f"Workflow(name='{self._name}', tasks={len(self._defs)})"


class WorkflowBuilder:
    """Declare a workflow: ``with WorkflowBuilder("name") as b: @task ...``.

    Leaving the ``with`` block registers every task declared under the workflow's
    namespace; ``build()`` makes a :class:`Workflow` of the tasks added with ``add_task``.
    """

    def __init__(
        self,
        name: str,
        *,
        tenant: str | None = None,
        package: str | None = None,
        workflow: str | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"WorkflowBuilder(name) takes a str, not {type(name).__name__}")
        self._name = name
        self._scope: Scope = (tenant or "public", package or "embedded", workflow or name)
        self._description = ""
        self._tags: dict[str, str] = {}
        self._added: list[TaskDef] = []

    def description(self, text: str) -> None:
        self._description = str(text)

    def tag(self, key: str, value: str) -> None:
        self._tags[str(key)] = str(value)

    def add_task(self, task: object) -> None:
        """Add a declared task (its id, or the function) to what ``build()`` builds."""
        if isinstance(task, str):
            task_id = task
        else:
            name = getattr(task, "__name__", None)
            if not isinstance(name, str):
                raise ValueError(
                    "Task must be either a string task ID or a function object with __name__ "
                    "attribute"
                )
            task_id = name
        found = lookup(namespace_of(self._scope, task_id))
        if found is None:
            raise ValueError(
                f"Task '{task_id}' not found in registry. Make sure it was decorated with @task."
            )
        self._added = [d for d in self._added if d.id != found.id] + [found]

    def build(self) -> Workflow:
        """A :class:`Workflow` of the added tasks (nothing is registered)."""
        if not self._added:
            raise ValueError("Failed to build workflow: Workflow cannot be empty")
        try:
            return Workflow._make(
                self._scope[2], self._scope[0], self._description, self._tags, self._added
            )
        except ValueError as exc:
            text = str(exc).removeprefix("Workflow validation failed: ")
            raise ValueError(f"Failed to build workflow: {text}") from None

    def __enter__(self) -> WorkflowBuilder:
        _stack().append(self._scope)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        stack = _stack()
        if stack and stack[-1] == self._scope:
            stack.pop()
        try:
            wf = Workflow._make(
                self._scope[2],
                self._scope[0],
                self._description,
                self._tags,
                tasks_in(self._scope),
            )
            wf._register()
        except ValueError:
            if exc_type is None:
                raise
            # The block's own error is the one worth seeing.
        return False

    def __repr__(self) -> str:
        return f"WorkflowBuilder(name='{self._name}')"


def register_workflow_constructor(name: str, constructor: Callable[[], Any]) -> None:
    """Call ``constructor()`` now and register the workflow it returns under ``name``."""
    try:
        made = constructor()
    except Exception as exc:
        raise ValueError(
            f"Failed to call workflow constructor: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(made, Workflow):
        raise ValueError(
            "Failed to extract workflow from constructor: expected a cloaca Workflow, got "
            f"{type(made).__name__}"
        )
    made._register(name)
