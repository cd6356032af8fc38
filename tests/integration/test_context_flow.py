"""How the context flows along a workflow's edges (DESIGN.md §4, "Context flow")."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from cloacina import Context, DefaultRunner, ExecutionStatus, TaskStatus, task, workflow


def test_root_receives_input_and_chain_passes_output(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    seen: dict[str, dict[str, Any]] = {}
    wf_name = name("chain")

    @workflow(name=wf_name)
    class Chain:
        @task
        def first(context: Context) -> None:
            seen["first"] = context.to_dict()
            context.insert("doubled", context["n"] * 2)

        @task(dependencies=[first])
        def second(context: Context) -> None:
            seen["second"] = context.to_dict()
            context.insert("plus_one", context["doubled"] + 1)

    result = runner.execute(wf_name, {"n": 21})

    assert result.status == ExecutionStatus.COMPLETED
    assert result.status == "completed"  # type: ignore[comparison-overlap]  # StrEnum == str
    assert seen["first"] == {"n": 21}
    assert seen["second"] == {"n": 21, "doubled": 42}
    assert result.final_context == {"n": 21, "doubled": 42, "plus_one": 43}
    assert {t: r.status for t, r in result.tasks.items()} == {
        "first": TaskStatus.COMPLETED,
        "second": TaskStatus.COMPLETED,
    }
    assert all(r.attempts == 1 for r in result.tasks.values())
    assert result.workflow_name == wf_name
    assert result.error is None


def test_join_receives_deep_merge_in_declared_order(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    seen: dict[str, dict[str, Any]] = {}
    wf_name = name("diamond")

    @workflow(name=wf_name)
    class Diamond:
        @task
        def root(context: Context) -> None:
            context.insert("nested", {"root": 1, "shared": "root"})

        @task(dependencies=[root])
        def left(context: Context) -> None:
            context.set("winner", "left")
            context.set("nested", {**context["nested"], "left": 2, "shared": "left"})

        @task(dependencies=[root])
        def right(context: Context) -> None:
            context.set("winner", "right")
            context.set("nested", {**context["nested"], "right": 3, "shared": "right"})

        # Same two dependencies, declared in opposite orders: the later one wins scalars.
        @task(dependencies=[left, right])
        def join_lr(context: Context) -> None:
            seen["join_lr"] = context.to_dict()
            context.set("lr_saw", context["winner"])

        @task(dependencies=["right", "left"])
        def join_rl(context: Context) -> None:
            seen["join_rl"] = context.to_dict()
            context.set("rl_saw", context["winner"])

    result = runner.execute(wf_name)

    assert result.status == "completed"
    both = {"root": 1, "left": 2, "right": 3}
    assert seen["join_lr"] == {"winner": "right", "nested": {**both, "shared": "right"}}
    assert seen["join_rl"] == {"winner": "left", "nested": {**both, "shared": "left"}}
    # final_context: deep merge of the leaves (join_lr then join_rl, topological order).
    assert result.final_context == {
        "winner": "left",
        "nested": {**both, "shared": "left"},
        "lr_saw": "right",
        "rl_saw": "left",
    }


def test_final_context_is_merge_of_leaf_outputs_only(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("leaves")

    @workflow(name=wf_name)
    class Leaves:
        @task
        def root(context: Context) -> None:
            context.insert("from_root", True)

        @task(dependencies=[root])
        def middle(context: Context) -> None:
            context.insert("tmp", "middle")

        @task(dependencies=[middle])
        def leaf_a(context: Context) -> None:
            context.remove("tmp")  # an intermediate key a leaf drops does not reappear
            context.insert("a", {"x": 1, "y": 1})

        @task(dependencies=[root])
        def leaf_b(context: Context) -> None:
            context.insert("a", {"y": 2, "z": 2})
            context.insert("b", "b")

    result = runner.execute(wf_name, {"input": "kept"})

    assert result.status == "completed"
    assert result.final_context == {
        "input": "kept",
        "from_root": True,
        "a": {"x": 1, "y": 2, "z": 2},
        "b": "b",
    }
    assert "tmp" not in result.final_context


def test_returned_dict_is_merged_into_context(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("returns")

    @workflow(name=wf_name)
    class Returns:
        @task
        def produce(context: Context) -> dict[str, Any]:
            context.insert("inserted", 1)
            return {"returned": 2, "cfg": {"b": 2}}

        @task(dependencies=[produce])
        async def consume(context: Context) -> dict[str, Any]:
            return {"sum": context["inserted"] + context["returned"]}

    result = runner.execute(wf_name, {"cfg": {"a": 1}})

    assert result.status == "completed"
    assert result.final_context == {
        "cfg": {"a": 1, "b": 2},
        "inserted": 1,
        "returned": 2,
        "sum": 3,
    }


@pytest.mark.parametrize("kind", ["dict", "context", "none"])
def test_input_may_be_dict_context_or_none(
    runner: DefaultRunner, name: Callable[[str], str], kind: str
) -> None:
    wf_name = name("inputs")

    @workflow(name=wf_name)
    class Inputs:
        @task
        def echo(context: Context) -> None:
            context.set("keys", sorted(context.keys()))

    data = {"alpha": 1, "beta": [1, 2]}
    inputs: dict[str, Context | dict[str, Any] | None] = {
        "dict": dict(data),
        "context": Context(data),
        "none": None,
    }
    arg = inputs[kind]

    result = runner.execute(wf_name, arg)

    assert result.status == "completed"
    if kind == "none":
        assert result.final_context == {"keys": []}
    else:
        assert result.final_context == {**data, "keys": ["alpha", "beta"]}


def test_stored_outputs_survive_in_the_database(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("outputs")

    @workflow(name=wf_name)
    class Outputs:
        @task
        def a(context: Context) -> None:
            context.insert("a", 1)

        @task(dependencies=[a])
        def b(context: Context) -> None:
            context.insert("b", 2)

    result = runner.execute(wf_name, {"in": 0})
    outputs = runner.store.get_outputs(result.execution_id, ["a", "b"])

    assert set(outputs) == {"a", "b"}
    assert json.loads(outputs["a"]) == {"in": 0, "a": 1}
    assert json.loads(outputs["b"]) == {"in": 0, "a": 1, "b": 2}


def test_execute_accepts_the_workflow_class(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("by_class")

    @workflow(name=wf_name)
    class ByClass:
        @task
        def only(context: Context) -> None:
            context.insert("ran", True)

    result = runner.execute(ByClass, {"x": 1})

    assert result.status == "completed"
    assert result.workflow_name == wf_name
    assert result.final_context == {"x": 1, "ran": True}
    assert ByClass.only(Context({"y": 2})) is None  # the task stays directly callable
