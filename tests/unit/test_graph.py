"""graph.build_graph: validation, deterministic topological order, roots and leaves."""

from __future__ import annotations

from itertools import pairwise

import pytest

from cloacina import CycleError, WorkflowDefinitionError
from cloacina.errors import DuplicateTaskError, UnknownDependencyError
from cloacina.model.graph import Graph, build_graph, check_unique


def test_linear_chain() -> None:
    graph = build_graph("w", {"c": ["b"], "b": ["a"], "a": []})
    assert graph.order == ("a", "b", "c")
    assert graph.roots == ("a",)
    assert graph.leaves == ("c",)


def test_independent_tasks_keep_declaration_order() -> None:
    assert build_graph("w", {"z": [], "a": [], "m": []}).order == ("z", "a", "m")


def test_ties_are_broken_by_declaration_order() -> None:
    # "x" is ready from the start, but "z" and "y" were declared before it, so once "root"
    # is done they come first: among ready tasks the earliest declared always goes next.
    graph = build_graph("w", {"root": [], "z": ["root"], "y": ["root"], "x": []})
    assert graph.order == ("root", "z", "y", "x")


def test_diamond() -> None:
    deps = {"a": [], "c": ["a"], "b": ["a"], "d": ["b", "c"]}
    graph = build_graph("w", deps)
    assert graph.order == ("a", "c", "b", "d")
    assert graph.roots == ("a",)
    assert graph.leaves == ("d",)
    assert graph.dependencies["d"] == ("b", "c")  # declared order is kept
    assert graph.dependents["a"] == ("c", "b")
    assert graph.dependents["d"] == ()


def test_order_is_deterministic() -> None:
    deps = {f"t{i}": [f"t{j}" for j in range(i) if (i * j) % 3 == 1] for i in range(12)}
    first = build_graph("w", deps)
    assert all(build_graph("w", deps) == first for _ in range(5))


def test_several_roots_and_leaves_in_order() -> None:
    graph = build_graph("w", {"r2": [], "r1": [], "l1": ["r1"], "l2": ["r2", "r1"]})
    assert graph.roots == ("r2", "r1")
    assert graph.leaves == ("l1", "l2")


def test_single_task_is_root_and_leaf() -> None:
    graph = build_graph("w", {"only": []})
    assert graph == Graph(order=("only",), dependencies={"only": ()}, dependents={"only": ()})
    assert graph.roots == graph.leaves == ("only",)


def test_empty_workflow_is_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError, match="no tasks"):
        build_graph("w", {})


def test_unknown_dependency_with_suggestion() -> None:
    with pytest.raises(UnknownDependencyError) as info:
        build_graph("w", {"extract": [], "load": ["extrakt"]})
    assert "'load'" in str(info.value)
    assert "did you mean 'extract'?" in str(info.value)


def test_self_loop_is_a_cycle() -> None:
    with pytest.raises(CycleError) as info:
        build_graph("w", {"a": [], "b": ["a", "b"]})
    assert info.value.cycle == ["b", "b"]


def test_repeated_dependency_is_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError, match="twice"):
        build_graph("w", {"a": [], "b": ["a", "a"]})


def test_cycle_reports_only_cycle_members_along_the_edges() -> None:
    deps = {
        "up": [],
        "p": ["up", "r"],
        "q": ["p"],
        "r": ["q"],
        "down": ["r"],
        "unrelated": [],
    }
    with pytest.raises(CycleError) as info:
        build_graph("wf", deps)
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[:-1]) == ["p", "q", "r"]
    for dependency, dependent in pairwise(cycle):
        assert dependency in deps[dependent]
    assert info.value.workflow == "wf"
    assert "Remove one of these dependencies" in str(info.value)


def test_check_unique() -> None:
    check_unique("w", ["a", "b", "c"])
    with pytest.raises(DuplicateTaskError) as info:
        check_unique("w", ["a", "b", "a", "b"])
    assert "'a'" in str(info.value)
