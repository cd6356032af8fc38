"""What a run's page draws, as one JSON document its script renders (DESIGN §12): the tasks
(id, status, attempts, error, and a mapped task's instances summarised), the graph (every
task up to :data:`MAX_NODES`, beyond that groups of consecutive layers so that 10,000 tasks
stay a readable picture), and the attempts for the Gantt chart (seconds from the run's first
moment). Pure: the page's route reads the run, its stored graph and its attempts through the
service and hands them here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cloacina.model.status import WorkflowResult
from cloacina.service.types import TaskAttempt

#: Beyond this many tasks the graph shows groups of layers instead of every task.
MAX_NODES = 300
#: At most this many groups in a grouped graph (layers are banded to fit).
MAX_GROUPS = 60
#: A task's error is cut to this many characters in the list (the panel has it whole).
ERROR_CHARS = 200


def layers(dependencies: dict[str, list[str]]) -> dict[str, int]:
    """Each task's layer: the length of the longest dependency path reaching it
    (iterative, so a chain of 100,000 tasks does not exhaust the stack)."""
    layer: dict[str, int] = {}
    for start in dependencies:
        if start in layer:
            continue
        stack: list[tuple[str, bool]] = [(start, False)]
        visiting: set[str] = set()
        while stack:
            task, expanded = stack.pop()
            if task in layer:
                continue
            parents = [d for d in dependencies.get(task, []) if d in dependencies]
            if expanded:
                visiting.discard(task)
                known = [layer[p] for p in parents if p in layer]
                layer[task] = 1 + max(known, default=-1)
                continue
            visiting.add(task)
            stack.append((task, True))
            # A cycle cannot be stored, but a parent being visited is skipped, not looped.
            stack.extend((p, False) for p in parents if p not in layer and p not in visiting)
    return layer


def graph_of(
    statuses: dict[str, str], dependencies: dict[str, list[str]]
) -> tuple[dict[str, Any], list[int] | None]:
    """The graph to draw, and for a grouped one each task's group (in ``statuses`` order)."""
    deps = {t: [d for d in dependencies.get(t, []) if d in statuses] for t in statuses}
    if len(statuses) <= MAX_NODES:
        nodes = [{"id": t, "status": s} for t, s in statuses.items()]
        edges = [[source, target] for target, sources in deps.items() for source in sources]
        return {"nodes": nodes, "edges": edges}, None
    layer = layers(deps)
    depth = max(layer.values()) + 1
    band = -(-depth // MAX_GROUPS)  # layers per group, so that there are at most MAX_GROUPS
    member = [layer[t] // band for t in statuses]
    sizes: dict[int, int] = {}
    for g in member:
        sizes[g] = sizes.get(g, 0) + 1
    names: dict[int, str] = {}
    for g in sorted(sizes):
        first, last = g * band + 1, min(depth, (g + 1) * band)
        where = f"layer {first}" if first == last else f"layers {first}-{last}"
        names[g] = where
    # Groups are numbered by their position in the list (empty bands have no group).
    position = {g: i for i, g in enumerate(names)}
    member = [position[g] for g in member]
    groups = [{"id": names[g], "size": sizes[g]} for g in names]
    index = {t: member[i] for i, t in enumerate(statuses)}
    pairs = {(index[s], index[t]) for t, sources in deps.items() for s in sources}
    names = {position[g]: label for g, label in names.items()}
    edges = [[names[a], names[b]] for a, b in sorted(pairs) if a != b]
    return {"groups": groups, "edges": edges}, member


def ready_times(run: WorkflowResult, dependencies: dict[str, list[str]]) -> dict[str, datetime]:
    """When each task could first start: its last dependency's end, or the run's start."""
    begun = run.started_at or run.created_at
    ready: dict[str, datetime] = {}
    for task_id in run.tasks:
        ends = [run.tasks[d].finished_at for d in dependencies.get(task_id, []) if d in run.tasks]
        known = [e for e in ends if e is not None]
        if known and len(known) == len(ends):
            ready[task_id] = max(known)
        elif not ends and begun is not None:
            ready[task_id] = begun
    return ready


def bars(attempts: list[TaskAttempt], ready: dict[str, datetime], now: datetime) -> dict[str, Any]:
    """The Gantt chart's rows, one per attempt that started, in order of start: task id,
    attempt, outcome, and seconds from the chart's origin to its wait's start (queued after
    its dependencies for a first attempt, the retry's backoff for a later one; ``null``
    when unknown), to its start and to its end (``null`` while it runs)."""
    started = sorted(
        (a for a in attempts if a.started_at is not None),
        key=lambda a: (a.started_at or now, a.task_id, a.attempt),
    )
    if not started:
        return {"span": 0.0, "rows": []}
    previous: dict[str, datetime] = {}
    since: dict[tuple[str, int], datetime | None] = {}
    for attempt in sorted(started, key=lambda a: (a.task_id, a.attempt)):
        begin = attempt.started_at or now
        waited_from = (ready if attempt.attempt == 1 else previous).get(attempt.task_id)
        ok = waited_from is not None and waited_from <= begin
        since[(attempt.task_id, attempt.attempt)] = waited_from if ok else None
        previous[attempt.task_id] = attempt.finished_at or now
    origin = min([a.started_at or now for a in started] + [s for s in since.values() if s])

    def at(moment: datetime | None) -> float | None:
        return None if moment is None else round((moment - origin).total_seconds(), 6)

    rows = [
        [
            a.task_id,
            a.attempt,
            a.outcome,
            at(since[(a.task_id, a.attempt)]),
            at(a.started_at),
            at(a.finished_at),
        ]
        for a in started
    ]
    span = max(0.001, max((a.finished_at or now) - origin for a in started).total_seconds())
    return {"span": round(span, 6), "rows": rows}


def run_state(
    run: WorkflowResult,
    dependencies: dict[str, list[str]],
    attempts: list[TaskAttempt],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The whole document a run's page renders."""
    now = now or datetime.now(UTC)
    statuses = {task_id: task.status.value for task_id, task in run.tasks.items()}
    graph, member = graph_of(statuses, dependencies)
    tasks = [
        [
            t.task_id,
            t.status.value,
            t.attempts,
            (t.error or "")[:ERROR_CHARS] or None,
            None if t.instances is None else t.instances.describe(),
        ]
        for t in run.tasks.values()
    ]
    return {
        "execution_id": run.execution_id,
        "status": run.status.value,
        "terminal": run.status.is_terminal,
        "tasks": tasks,
        "graph": graph,
        "member": member,
        "gantt": bars(attempts, ready_times(run, dependencies), now),
    }


__all__ = ["MAX_NODES", "bars", "graph_of", "layers", "ready_times", "run_state"]
