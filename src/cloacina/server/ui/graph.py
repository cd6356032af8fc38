"""A run's graph and its attempts' Gantt chart, laid out here in Python (DESIGN §12) so the
page draws them as inline SVG with no script library: tasks in layers by their longest path
from a root, left to right; attempts as bars on one time axis."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from cloacina.model.status import WorkflowResult
from cloacina.service.types import TaskAttempt

#: Beyond this many tasks the page shows counts by status instead of every node.
MAX_NODES = 300
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 40, 50, 14, 8
ROW_H, LABEL_W, CHART_W = 22, 160, 760


@dataclass(frozen=True)
class Node:
    id: str
    status: str
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    path: str
    source: str
    target: str


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: int = 0
    height: int = 0
    #: Tasks per status, set instead of nodes when the run has more than MAX_NODES tasks.
    summary: dict[str, int] | None = None


def layers(dependencies: dict[str, list[str]]) -> dict[str, int]:
    """Each task's layer: the length of the longest dependency path reaching it."""
    layer: dict[str, int] = {}

    def depth(task: str, seen: frozenset[str]) -> int:
        if task in layer:
            return layer[task]
        parents = [d for d in dependencies.get(task, []) if d in dependencies and d not in seen]
        found = 1 + max((depth(p, seen | {task}) for p in parents), default=-1)
        layer[task] = found
        return found

    for task in dependencies:
        depth(task, frozenset())
    return layer


def layout(run: WorkflowResult, dependencies: dict[str, list[str]]) -> Graph:
    """The run's tasks placed left to right by layer (dependencies outside the run dropped)."""
    statuses = {task_id: task.status.value for task_id, task in run.tasks.items()}
    if len(statuses) > MAX_NODES:
        summary: dict[str, int] = {}
        for word in statuses.values():
            summary[word] = summary.get(word, 0) + 1
        return Graph(summary=summary)
    deps = {t: [d for d in dependencies.get(t, []) if d in statuses] for t in statuses}
    layer = layers(deps)
    columns: dict[int, list[str]] = {}
    for task_id in statuses:  # the run's order (execution order) within a column
        columns.setdefault(layer[task_id], []).append(task_id)
    place: dict[str, tuple[int, int]] = {}
    for column, members in columns.items():
        for row, task_id in enumerate(members):
            place[task_id] = (PAD + column * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    graph = Graph(
        nodes=[Node(t, statuses[t], *place[t]) for t in statuses],
        width=PAD * 2 + len(columns) * (NODE_W + GAP_X) - GAP_X,
        height=PAD * 2 + max(len(m) for m in columns.values()) * (NODE_H + GAP_Y) - GAP_Y,
    )
    for target, sources in deps.items():
        tx, ty = place[target]
        for source in sources:
            sx, sy = place[source]
            x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H // 2, tx, ty + NODE_H // 2
            mid = (x1 + x2) // 2
            path = f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"
            graph.edges.append(Edge(path, source, target))
    return graph


@dataclass(frozen=True)
class Bar:
    task_id: str
    attempt: int
    outcome: str
    x: float
    width: float
    y: int
    seconds: float | None
    label: str
    #: The wait before the attempt (queued after its dependencies, or a retry's backoff).
    wait_x: float = 0.0
    wait_width: float = 0.0
    waited: float | None = None


@dataclass
class Gantt:
    bars: list[Bar] = field(default_factory=list)
    width: int = LABEL_W + CHART_W + 40  # room for the last tick label
    height: int = 0
    #: Seconds the axis spans, and its tick marks (x, label).
    span: float = 0.0
    ticks: list[tuple[float, str]] = field(default_factory=list)
    #: How many attempts there are when too many (beyond MAX_NODES) to draw.
    too_many: int = 0


def gantt(
    attempts: list[TaskAttempt],
    ready: dict[str, datetime] | None = None,
    now: datetime | None = None,
) -> Gantt:
    """A bar per attempt that started, one row each, on a shared time axis; before each
    bar its wait: since ``ready[task]`` (its dependencies done) for a first attempt, since
    the previous attempt's end for a retry."""
    now = now or datetime.now(UTC)
    ready = ready or {}
    started = [a for a in attempts if a.started_at is not None]
    if not started:
        return Gantt()
    if len(started) > MAX_NODES:
        return Gantt(too_many=len(started))
    ordered = sorted(started, key=lambda a: (a.started_at or now, a.task_id, a.attempt))
    previous: dict[str, datetime] = {}
    wait_of: dict[tuple[str, int], datetime | None] = {}
    for attempt in sorted(started, key=lambda a: (a.task_id, a.attempt)):
        first = attempt.attempt == 1
        since = (ready if first else previous).get(attempt.task_id)
        start = attempt.started_at or now
        key = (attempt.task_id, attempt.attempt)
        wait_of[key] = since if since is not None and since <= start else None
        previous[attempt.task_id] = attempt.finished_at or now
    waits = [w for w in wait_of.values() if w is not None]
    origin = min([a.started_at or now for a in started] + waits)
    ends = [a.finished_at or now for a in started]
    span = max(0.001, max((e - origin).total_seconds() for e in ends))
    scale = CHART_W / span
    chart = Gantt(span=span, height=len(started) * ROW_H + 20)
    for row, attempt in enumerate(ordered):
        begin = ((attempt.started_at or origin) - origin).total_seconds()
        end = ((attempt.finished_at or now) - origin).total_seconds()
        since = wait_of[(attempt.task_id, attempt.attempt)]
        wait_begin = begin if since is None else (since - origin).total_seconds()
        chart.bars.append(
            Bar(
                task_id=attempt.task_id,
                attempt=attempt.attempt,
                outcome=attempt.outcome,
                x=LABEL_W + begin * scale,
                width=max(2.0, (end - begin) * scale),
                y=row * ROW_H,
                seconds=attempt.duration,
                label=f"{attempt.task_id} #{attempt.attempt}",
                wait_x=LABEL_W + wait_begin * scale,
                wait_width=(begin - wait_begin) * scale,
                waited=None if since is None else begin - wait_begin,
            )
        )
    for i in range(5):
        seconds = span * i / 4
        chart.ticks.append((LABEL_W + seconds * scale, f"{seconds:.2f}s"))
    return chart


__all__ = ["MAX_NODES", "Gantt", "Graph", "gantt", "layers", "layout"]
