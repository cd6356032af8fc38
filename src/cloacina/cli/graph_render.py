"""Drawings of a workflow's DAG as text, Mermaid or Graphviz DOT (pure functions, no I/O).

Every function takes a :class:`~cloacina.model.graph.Graph` (the validated DAG of a workflow)
and returns a string, so the drawings can be tested without a terminal. ``notes`` maps a task
id to short remarks (``3 attempts``, ``trigger: all_done``) shown next to the task; build them
from a workflow with :func:`task_notes`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from cloacina.model.graph import Graph
from cloacina.model.workflow import Workflow

FORMATS = ("text", "mermaid", "dot")

Notes = Mapping[str, Sequence[str]]

#: How many dependencies a text line lists before it abbreviates the rest.
MAX_LISTED = 12

_DEFAULT_RULE = "all_success"
_MERMAID_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Words a Mermaid flowchart cannot take as node ids (they are keywords of its grammar).
_MERMAID_RESERVED = frozenset(
    {
        "end",
        "graph",
        "flowchart",
        "subgraph",
        "direction",
        "style",
        "class",
        "classdef",
        "click",
        "call",
        "href",
        "linkstyle",
        "default",
    }
)


# ---- structure -------------------------------------------------------------------------------
def layer_of(graph: Graph) -> dict[str, int]:
    """Each task's layer: the length of the longest path from a root to it (roots are 0)."""
    layer: dict[str, int] = {}
    for task_id in graph.order:  # topological: dependencies come first
        deps = graph.dependencies[task_id]
        layer[task_id] = 1 + max(layer[d] for d in deps) if deps else 0
    return layer


def layers(graph: Graph) -> list[list[str]]:
    """The tasks grouped by layer, each layer in topological order."""
    layer = layer_of(graph)
    out: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for task_id in graph.order:
        out[layer[task_id]].append(task_id)
    return out


def chains(graph: Graph) -> list[list[str]] | None:
    """The graph as simple chains ``a -> b -> c`` (one per connected part), or ``None`` when
    some task has more than one dependency or dependent."""
    if any(len(graph.dependencies[t]) > 1 or len(graph.dependents[t]) > 1 for t in graph.order):
        return None
    out: list[list[str]] = []
    for root in graph.roots:
        chain = [root]
        while graph.dependents[chain[-1]]:
            chain.append(graph.dependents[chain[-1]][0])
        out.append(chain)
    return out


def task_notes(wf: Workflow) -> dict[str, list[str]]:
    """Remarks worth showing on a drawing of ``wf``: retries, timeouts, non-default trigger
    rules and async tasks (tasks with nothing special are left out)."""
    notes: dict[str, list[str]] = {}
    for task_id, task in wf.tasks.items():
        marks: list[str] = []
        if task.retry.max_attempts > 1:
            marks.append(f"{task.retry.max_attempts} attempts")
        if task.timeout is not None:
            marks.append(f"timeout {task.timeout:g}s")
        rule = task.trigger_rule.describe()
        if rule != _DEFAULT_RULE:
            marks.append(f"trigger: {rule}")
        if task.is_async:
            marks.append("async")
        if marks:
            notes[task_id] = marks
    return notes


# ---- text ------------------------------------------------------------------------------------
def _symbols(unicode: bool) -> dict[str, str]:
    if unicode:
        return {"to": "──▶", "from": "◀──", "down": "│", "head": "▼", "more": "…", "dot": "·"}
    return {"to": "-->", "from": "<--", "down": "|", "head": "v", "more": "...", "dot": "-"}


def _note(task_id: str, notes: Notes) -> str:
    marks = notes.get(task_id)
    return f" [{', '.join(marks)}]" if marks else ""


def _listing(ids: Sequence[str], more: str) -> str:
    if len(ids) <= MAX_LISTED:
        return ", ".join(ids)
    shown = ", ".join(ids[: MAX_LISTED - 1])
    return f"{shown}, {more} {ids[-1]} ({len(ids)} tasks)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def render_text(
    name: str, graph: Graph, notes: Notes | None = None, *, unicode: bool = True
) -> str:
    """A drawing for the terminal.

    A workflow made of simple chains is drawn as one arrow line per chain
    (``collect_data ──▶ process_data ──▶ generate_report``). Any other shape is drawn layer by
    layer (a task's layer is its longest distance from a root), each task with the tasks it
    waits for (``join ◀── left, right``). ``notes`` are shown in brackets after the task.
    """
    notes = notes or {}
    sym = _symbols(unicode)
    n_tasks = len(graph.order)
    grouped = layers(graph)
    lines: list[str] = []
    as_chains = chains(graph)
    if as_chains is not None:
        lines.append(
            f"{name} {sym['dot']} {_plural(n_tasks, 'task')} {sym['dot']} "
            f"{_plural(len(as_chains), 'chain')}"
        )
        arrow = f" {sym['to']} "
        for chain in as_chains:
            lines.append("  " + arrow.join(t + _note(t, notes) for t in chain))
        return "\n".join(lines) + "\n"

    lines.append(
        f"{name} {sym['dot']} {_plural(n_tasks, 'task')} {sym['dot']} "
        f"{_plural(len(grouped), 'layer')} {sym['dot']} "
        f"roots: {_listing(graph.roots, sym['more'])} {sym['dot']} "
        f"leaves: {_listing(graph.leaves, sym['more'])}"
    )
    label_width = len(f"layer {len(grouped)}")
    pad = " " * (label_width + 4)  # under the first task of a layer
    for index, tasks in enumerate(grouped):
        if index:
            lines.append(f"{pad}{sym['down']}")
            lines.append(f"{pad}{sym['head']}")
        width = max(len(t) for t in tasks)
        for row, task_id in enumerate(tasks):
            label = f"layer {index + 1}".ljust(label_width) if row == 0 else " " * label_width
            deps = graph.dependencies[task_id]
            if deps:
                body = f"{task_id.ljust(width)} {sym['from']} {_listing(deps, sym['more'])}"
            elif not graph.dependents[task_id]:
                body = f"{task_id.ljust(width)} (isolated: no dependencies, no dependents)"
            else:
                body = task_id
            lines.append(f"  {label}  {body}{_note(task_id, notes)}".rstrip())
    return "\n".join(lines) + "\n"


# ---- Mermaid ---------------------------------------------------------------------------------
def _mermaid_label(text: str) -> str:
    """Text for a Mermaid ``["..."]`` label (quotes and markup characters as entities)."""
    out = text.replace("&", "#amp;").replace('"', "#quot;")
    return out.replace("<", "#lt;").replace(">", "#gt;")


def mermaid_ids(task_ids: Sequence[str]) -> dict[str, str]:
    """A Mermaid node id for each task: the task id itself when Mermaid accepts it, else a
    sanitised, unique one (``1st-step`` -> ``t_1st_step``, ``end`` -> ``t_end``)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    safe = {t for t in task_ids if _MERMAID_ID.match(t) and t.lower() not in _MERMAID_RESERVED}
    used.update(safe)
    for task_id in task_ids:
        if task_id in safe:
            out[task_id] = task_id
            continue
        base = "t_" + re.sub(r"[^A-Za-z0-9_]", "_", task_id)
        candidate, n = base, 2
        while candidate in used:
            candidate, n = f"{base}_{n}", n + 1
        used.add(candidate)
        out[task_id] = candidate
    return out


def render_mermaid(name: str, graph: Graph, notes: Notes | None = None) -> str:
    """A Mermaid ``flowchart LR``: one ``a --> b`` line per dependency.

    Tasks whose Mermaid id differs from the task id, tasks with notes and isolated tasks are
    declared as nodes first (``t_1st_step["1st-step"]``).
    """
    notes = notes or {}
    ids = mermaid_ids(graph.order)
    lines = ["flowchart LR", f"    %% workflow {name}"]
    for task_id in graph.order:
        marks = notes.get(task_id)
        isolated = not graph.dependencies[task_id] and not graph.dependents[task_id]
        if ids[task_id] == task_id and not marks and not isolated:
            continue
        label = _mermaid_label(task_id)
        if marks:
            label += "<br/>" + _mermaid_label(", ".join(marks))
        if ids[task_id] == task_id and not marks:
            lines.append(f"    {task_id}")
        else:
            lines.append(f'    {ids[task_id]}["{label}"]')
    for task_id in graph.order:
        for dep in graph.dependencies[task_id]:
            lines.append(f"    {ids[dep]} --> {ids[task_id]}")
    return "\n".join(lines) + "\n"


# ---- Graphviz DOT ----------------------------------------------------------------------------
def dot_quote(text: str) -> str:
    """``text`` as a DOT double-quoted string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render_dot(name: str, graph: Graph, notes: Notes | None = None) -> str:
    """A Graphviz ``digraph`` (left to right): every task as a node, one edge per dependency."""
    notes = notes or {}
    lines = [
        f"digraph {dot_quote(name)} {{",
        "    rankdir=LR;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
    ]
    for task_id in graph.order:
        marks = notes.get(task_id)
        if marks:
            label = dot_quote(task_id + "\n" + ", ".join(marks))
            lines.append(f"    {dot_quote(task_id)} [label={label}];")
        else:
            lines.append(f"    {dot_quote(task_id)};")
    for task_id in graph.order:
        for dep in graph.dependencies[task_id]:
            lines.append(f"    {dot_quote(dep)} -> {dot_quote(task_id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- all formats -----------------------------------------------------------------------------
def render(
    name: str,
    graph: Graph,
    fmt: str,
    notes: Notes | None = None,
    *,
    unicode: bool = True,
) -> str:
    """The drawing of ``graph`` in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "text":
        return render_text(name, graph, notes, unicode=unicode)
    if fmt == "mermaid":
        return render_mermaid(name, graph, notes)
    if fmt == "dot":
        return render_dot(name, graph, notes)
    raise ValueError(f"unknown graph format {fmt!r}; use one of {', '.join(FORMATS)}")


def render_workflow(wf: Workflow, fmt: str, *, unicode: bool = True) -> str:
    """The drawing of a workflow's DAG, with its tasks' notes (see :func:`task_notes`)."""
    return render(wf.name, wf.graph, fmt, task_notes(wf), unicode=unicode)


__all__ = [
    "FORMATS",
    "chains",
    "dot_quote",
    "layer_of",
    "layers",
    "mermaid_ids",
    "render",
    "render_dot",
    "render_mermaid",
    "render_text",
    "render_workflow",
    "task_notes",
]
