"""``@trigger``: checked at decoration time; the context key; the back-off."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest

from cloacina import Context, ContextError, WorkflowDefinitionError, trigger
from cloacina.engine.triggers import MAX_BACKOFF, backoff
from cloacina.model.trigger import (
    TriggerCatalog,
    context_of,
    make_trigger,
    trigger_catalog,
    trigger_key,
    trigger_of,
)


def test_the_decorator_declares_a_trigger_and_keeps_the_function() -> None:
    @trigger(workflow="ingest", poll_interval=timedelta(minutes=1), name="unit_decl")
    def poll() -> dict[str, Any]:
        return {"a": 1}

    try:
        declared = trigger_of(poll)
        assert trigger_catalog.find("unit_decl") is declared
        assert declared.workflow == "ingest" and declared.poll_interval == 60.0
        assert declared.allow_concurrent is False and declared.package is None
        assert poll() == {"a": 1}, "the function stays callable as it was"
        assert declared.poll() == {"a": 1}
    finally:
        trigger_catalog.remove("unit_decl")
    assert trigger_catalog.find("unit_decl") is None


def test_the_name_defaults_to_the_qualified_name() -> None:
    def outer() -> None:
        return None

    made = make_trigger(outer, workflow="w", poll_interval=1)
    assert made.name == outer.__qualname__
    assert "<locals>" in made.name


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf"), True, "30", None])
def test_a_bad_interval_is_refused(interval: Any) -> None:
    with pytest.raises(WorkflowDefinitionError, match="poll_interval"):
        make_trigger(lambda: None, workflow="w", poll_interval=interval, name="t")


def test_a_function_needing_arguments_is_refused() -> None:
    def needs(path: str) -> None:
        return None

    def optional(path: str = ".", *rest: str, **kw: str) -> None:
        return None

    async def coro() -> None:
        return None

    with pytest.raises(WorkflowDefinitionError, match="takes argument"):
        make_trigger(needs, workflow="w", poll_interval=1)  # type: ignore[arg-type]
    make_trigger(optional, workflow="w", poll_interval=1)
    with pytest.raises(WorkflowDefinitionError, match="async"):
        make_trigger(coro, workflow="w", poll_interval=1)
    with pytest.raises(WorkflowDefinitionError, match="function"):
        make_trigger(42, workflow="w", poll_interval=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "1abc", "has space", "x" * 256])
def test_a_bad_name_is_refused(name: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match="trigger name"):
        make_trigger(lambda: None, workflow="w", poll_interval=1, name=name)


@pytest.mark.parametrize("workflow", ["", "has space", 3])
def test_a_bad_workflow_is_refused(workflow: Any) -> None:
    with pytest.raises(WorkflowDefinitionError, match="workflow"):
        make_trigger(lambda: None, workflow=workflow, poll_interval=1, name="t")


def test_the_key_is_the_hash_of_canonical_json() -> None:
    a = {"b": [1, {"y": 2, "x": 1}], "a": "é"}
    b = {"a": "é", "b": [1, {"x": 1, "y": 2}]}
    assert trigger_key(a) == trigger_key(b)
    canonical = '{"a":"é","b":[1,{"x":1,"y":2}]}'
    assert trigger_key(a) == hashlib.sha256(canonical.encode()).hexdigest()
    assert trigger_key({"a": 1}) != trigger_key({"a": 2})
    assert trigger_key({"a": 1}) != trigger_key({"a": "1"})


def test_results_become_contexts_or_errors() -> None:
    assert context_of("t", None) is None
    assert context_of("t", {"a": 1}) == {"a": 1}
    assert context_of("t", Context({"a": 1})) == {"a": 1}
    with pytest.raises(WorkflowDefinitionError, match="returned list"):
        context_of("t", [1])
    with pytest.raises(ContextError):
        context_of("t", {"a": object()})
    with pytest.raises(ContextError):
        context_of("t", {1: "not a string key"})


def test_the_catalog_replaces_by_name() -> None:
    cat = TriggerCatalog()
    first = make_trigger(lambda: None, workflow="w", poll_interval=1, name="same")
    second = make_trigger(lambda: None, workflow="w", poll_interval=2, name="same")
    cat.add(first)
    generation = cat.generation
    cat.add(second)
    assert cat.generation > generation
    assert cat.all() == [second] and len(cat) == 1


def test_backoff_doubles_and_is_capped() -> None:
    assert backoff(10, 0) == 10
    assert [backoff(10, n) for n in (1, 2, 3)] == [20, 40, 80]
    assert backoff(10, 50) == MAX_BACKOFF
    assert backoff(7200, 3) == 7200, "never shorter than the trigger's own interval"
