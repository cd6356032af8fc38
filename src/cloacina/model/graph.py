"""DAG validation and ordering: duplicates, unknown dependencies, cycles, topological order."""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cloacina.errors import (
    CycleError,
    DuplicateTaskError,
    UnknownDependencyError,
    WorkflowDefinitionError,
)


@dataclass(frozen=True)
class Graph:
    """A validated DAG: the task ids in topological order and the edges both ways."""

    order: tuple[str, ...]
    dependencies: Mapping[str, tuple[str, ...]]
    dependents: Mapping[str, tuple[str, ...]]

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(t for t in self.order if not self.dependencies[t])

    @property
    def leaves(self) -> tuple[str, ...]:
        return tuple(t for t in self.order if not self.dependents[t])


def check_unique(workflow: str, ids: Sequence[str]) -> None:
    """Raise :class:`DuplicateTaskError` naming the first id that appears twice."""
    seen: set[str] = set()
    for task_id in ids:
        if task_id in seen:
            raise DuplicateTaskError(
                f"workflow {workflow!r} defines task {task_id!r} twice; give each task a "
                "unique id (the `id=` argument of @task, or the function name)"
            )
        seen.add(task_id)


def build_graph(workflow: str, dependencies: Mapping[str, Sequence[str]]) -> Graph:
    """Validate the edges of ``workflow`` and order its tasks.

    ``dependencies`` maps each task id (in declaration order) to the ids it depends on.
    Ties in the topological order follow declaration order, so the order is deterministic.
    """
    if not dependencies:
        raise WorkflowDefinitionError(
            f"workflow {workflow!r} has no tasks; add at least one @task to it"
        )
    ids = list(dependencies)
    known = set(ids)
    position = {task_id: i for i, task_id in enumerate(ids)}
    dependents: dict[str, list[str]] = {task_id: [] for task_id in ids}
    deps_of: dict[str, tuple[str, ...]] = {}
    for task_id in ids:
        deps = tuple(dependencies[task_id])
        seen: set[str] = set()
        for dep in deps:
            if dep not in known:
                close = difflib.get_close_matches(dep, ids, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise UnknownDependencyError(
                    f"task {task_id!r} of workflow {workflow!r} depends on unknown task "
                    f"{dep!r}{hint}"
                )
            if dep == task_id:
                raise CycleError(workflow, [task_id, task_id])
            if dep in seen:
                raise WorkflowDefinitionError(
                    f"task {task_id!r} of workflow {workflow!r} lists dependency {dep!r} twice"
                )
            seen.add(dep)
            dependents[dep].append(task_id)
        deps_of[task_id] = deps

    indegree = {task_id: len(deps_of[task_id]) for task_id in ids}
    ready = [position[t] for t in ids if indegree[t] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        task_id = ids[heapq.heappop(ready)]
        order.append(task_id)
        for child in dependents[task_id]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, position[child])
    if len(order) != len(ids):
        raise CycleError(workflow, _find_cycle(ids, deps_of, set(order)))
    return Graph(
        order=tuple(order),
        dependencies=deps_of,
        dependents={t: tuple(c) for t, c in dependents.items()},
    )


def _find_cycle(
    ids: Sequence[str], deps_of: Mapping[str, Sequence[str]], done: set[str]
) -> list[str]:
    """A cycle among the tasks Kahn's algorithm could not order, as a path a -> b -> a."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = finished
    for start in ids:
        if start in done or state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            deps = [d for d in deps_of[node] if d not in done]
            if i < len(deps):
                stack.append((node, i + 1))
                nxt = deps[i]
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt) :], nxt]
                    cycle.reverse()  # present it along the edges: dependency -> dependent
                    return cycle
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    raise AssertionError("no cycle found among unordered tasks")  # pragma: no cover
