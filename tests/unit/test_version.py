"""Workflow versions: SHA-256 of structure and task source, stable for equal definitions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from cloacina import Context, RetryPolicy, Task, Workflow, task, workflow
from cloacina.model import version as version_module
from cloacina.model.rules import context_value
from cloacina.model.version import compute_version
from cloacina.model.workflow import workflow_of


def extract(ctx: Context) -> None:
    ctx.set("rows", [1, 2, 3])


def transform(ctx: Context) -> None:
    ctx.set("rows", [r * 2 for r in ctx["rows"]])


def transform_changed(ctx: Context) -> None:
    ctx.set("rows", [r * 3 for r in ctx["rows"]])


def build(
    name: str = "versioned",
    *,
    transform_func: Callable[..., Any] = transform,
    transform_deps: tuple[str, ...] = ("extract",),
    **transform_options: Any,
) -> Workflow:
    return Workflow.from_tasks(
        name,
        [
            task(id="extract")(extract),
            task(id="transform", dependencies=transform_deps, **transform_options)(transform_func),
            task(id="other")(extract),
        ],
    )


def test_version_is_a_sha256_hex_digest() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", build().version)


def test_same_definition_gives_the_same_version() -> None:
    assert build().version == build().version


def test_same_class_definition_gives_the_same_version(new_name: Callable[..., str]) -> None:
    name = new_name()

    def define() -> type:
        @workflow(name=name)
        class wf:
            @task
            def a(ctx: Context) -> None:
                ctx.set("x", 1)

            @task(dependencies=[a], retry=RetryPolicy(max_attempts=2))
            def b(ctx: Context) -> None:
                pass

        return wf

    assert workflow_of(define()).version == workflow_of(define()).version


def test_changed_dependency_changes_the_version() -> None:
    assert build().version != build(transform_deps=()).version
    assert build().version != build(transform_deps=("other",)).version
    assert build().version != build(transform_deps=("extract", "other")).version


def test_changed_source_changes_the_version() -> None:
    assert build().version != build(transform_func=transform_changed).version


@pytest.mark.parametrize(
    "options",
    [
        {"retry": RetryPolicy(max_attempts=2)},
        {"timeout": 5},
        {"trigger_rule": "all_done"},
        {"trigger_rule": context_value("rows", "exists")},
    ],
    ids=["retry", "timeout", "trigger_rule", "condition"],
)
def test_changed_policy_changes_the_version(options: dict[str, Any]) -> None:
    assert build().version != build(**options).version


def test_changed_name_changes_the_version() -> None:
    assert build("one").version != build("two").version


def test_changed_task_id_changes_the_version() -> None:
    first = Workflow.from_tasks("w", [task(id="a")(extract)])
    second = Workflow.from_tasks("w", [task(id="b")(extract)])
    assert first.version != second.version


def test_compute_version_matches_the_workflow() -> None:
    wf = build()
    assert compute_version(wf.name, list(wf.tasks.values())) == wf.version


def test_function_without_source_still_gets_a_stable_version() -> None:
    def compile_task() -> Task:
        namespace: dict[str, Any] = {}
        exec(compile("def t(ctx):\n    ctx.set('x', 1)\n", "<generated>", "exec"), namespace)
        return task(namespace["t"])

    first = Workflow.from_tasks("w", [compile_task()]).version
    second = Workflow.from_tasks("w", [compile_task()]).version
    assert first == second


def test_equal_set_conditions_give_the_same_version() -> None:
    one = context_value("k", "in", {1, 9})
    other = context_value("k", "in", {9, 1})
    assert one == other
    first = Workflow.from_tasks("w", [task(id="t", trigger_rule=one)(extract)])
    second = Workflow.from_tasks("w", [task(id="t", trigger_rule=other)(extract)])
    assert first.version == second.version


def test_sourceless_function_with_nested_code_gets_a_stable_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = "def t(ctx):\n    ctx.set('x', [i for i in range(3)])\n"

    def compile_task() -> Task:
        namespace: dict[str, Any] = {}
        exec(compile(source, "<generated>", "exec"), namespace)
        return task(namespace["t"])

    first_task = compile_task()
    first = Workflow.from_tasks("w", [first_task]).version
    # a fresh cache stands for a fresh process
    monkeypatch.setattr(version_module, "_source_cache", {})
    second = Workflow.from_tasks("w", [compile_task()]).version
    assert first == second


def test_store_head_revision_constant_matches_the_migration_scripts() -> None:
    from cloacina.store import migrate

    assert migrate.head_revision() == migrate.HEAD_REVISION
