"""@workflow / @packaged_workflow: classes stay classes, registration, validation errors."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest

from cloacina import (
    CloacinaError,
    Context,
    CycleError,
    Task,
    TaskError,
    Workflow,
    WorkflowDefinitionError,
    WorkflowNotFoundError,
    packaged_workflow,
    task,
    workflow,
)
from cloacina.errors import DuplicateTaskError, UnknownDependencyError
from cloacina.model.workflow import catalog, workflow_of


def test_class_stays_a_class_with_callable_tasks(wf_name: str) -> None:
    @workflow(name=wf_name, description="demo")
    class pipeline:
        @task
        def collect(ctx: Context) -> None:
            ctx.insert("raw", [1, 2, 3])

        @task(dependencies=[collect])
        def total(ctx: Context) -> None:
            ctx.insert("sum", sum(ctx["raw"]))

    assert isinstance(pipeline, type)
    assert isinstance(pipeline.collect, Task)
    assert isinstance(pipeline.total, Task)
    ctx = Context()
    pipeline.collect(ctx)
    pipeline.total(ctx)
    assert ctx["sum"] == 6
    # a task reached through an instance is not bound to it
    assert pipeline().collect is pipeline.collect


def test_workflow_is_registered_in_the_catalog(wf_name: str) -> None:
    @workflow(name=wf_name)
    class wf:
        @task
        def only(ctx: Context) -> None:
            pass

    registered = catalog.get(wf_name)
    assert registered is workflow_of(wf)
    assert registered.name == wf_name
    assert registered.package == "embedded"
    assert list(registered.tasks) == ["only"]
    assert wf_name in catalog.names()
    assert catalog.find(wf_name) is registered
    assert catalog.find(wf_name, registered.version) is registered
    assert catalog.find(wf_name, "0" * 64) is None
    assert registered in catalog.all()


def test_name_and_description_default_to_the_class(wf_name: str) -> None:
    class Original:
        """
        Describes the workflow.
        """

        @task
        def only(ctx: Context) -> None:
            pass

    Original.__name__ = wf_name
    cls = workflow()(Original)
    wf = catalog.get(wf_name)
    assert workflow_of(cls) is wf
    assert wf.description == "Describes the workflow."


def test_packaged_workflow_metadata_and_namespace(wf_name: str) -> None:
    @packaged_workflow(
        name=wf_name, package="simple_demo", description="Data processing", author="Team"
    )
    class data_processing:
        @task(id="collect_data", dependencies=[])
        async def collect_data(ctx: Context) -> None:
            ctx.insert("raw_data", {"records": 1000})

        @task(dependencies=["collect_data"])
        def process_data(ctx: Context) -> None:
            if ctx.get("raw_data") is None:
                raise TaskError("Missing raw_data")

    wf = catalog.get(wf_name)
    assert isinstance(data_processing, type)
    assert wf.package == "simple_demo"
    assert wf.author == "Team"
    assert wf.description == "Data processing"
    assert wf.source is data_processing
    assert wf.tasks["collect_data"].is_async
    assert str(wf.namespace("process_data")) == f"public::simple_demo::{wf_name}::process_data"
    assert str(wf.namespace("process_data", tenant="acme")).startswith("acme::simple_demo::")


def test_embedded_namespace_uses_the_embedded_package(wf_name: str) -> None:
    @workflow(name=wf_name)
    class wf:
        @task
        def t(ctx: Context) -> None:
            pass

    assert str(workflow_of(wf).namespace("t")) == f"public::embedded::{wf_name}::t"


def test_tasks_are_kept_in_topological_order(wf_name: str) -> None:
    @workflow(name=wf_name)
    class wf:
        @task(dependencies=["middle"])
        def last(ctx: Context) -> None:
            pass

        @task(dependencies=["first"])
        def middle(ctx: Context) -> None:
            pass

        @task
        def first(ctx: Context) -> None:
            pass

    built = workflow_of(wf)
    assert list(built.tasks) == ["first", "middle", "last"]
    assert built.graph.roots == ("first",)
    assert built.graph.leaves == ("last",)


def test_static_method_tasks_are_collected(wf_name: str) -> None:
    @workflow(name=wf_name)
    class wf:
        @staticmethod
        @task
        def wrapped(ctx: Context) -> None:
            pass

        helper = "not a task"

        def method(self) -> None:
            pass

    assert list(workflow_of(wf).tasks) == ["wrapped"]


def test_cycle_error_names_the_path(wf_name: str) -> None:
    with pytest.raises(CycleError) as info:

        @workflow(name=wf_name)
        class wf:
            @task(dependencies=["b"])
            def a(ctx: Context) -> None:
                pass

            @task(dependencies=["a"])
            def b(ctx: Context) -> None:
                pass

    err = info.value
    assert err.workflow == wf_name
    assert err.cycle == ["a", "b", "a"]
    assert "a -> b -> a" in str(err)
    assert repr(wf_name) in str(err)
    assert isinstance(err, WorkflowDefinitionError)
    assert isinstance(err, CloacinaError)
    assert catalog.find(wf_name) is None  # nothing registered on failure


def test_cycle_path_follows_the_edges(wf_name: str) -> None:
    deps = {"start": [], "x": ["start", "z"], "y": ["x"], "z": ["y"], "end": ["z"]}
    with pytest.raises(CycleError) as info:
        Workflow.from_tasks(
            wf_name, [task(id=t, dependencies=d)(lambda ctx: None) for t, d in deps.items()]
        )
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"x", "y", "z"}
    for dependency, dependent in pairwise(cycle):
        assert dependency in deps[dependent]
    assert " -> ".join(cycle) in str(info.value)


def test_self_dependency_is_a_cycle(wf_name: str) -> None:
    with pytest.raises(CycleError) as info:

        @workflow(name=wf_name)
        class wf:
            @task(dependencies=["me"])
            def me(ctx: Context) -> None:
                pass

    assert info.value.cycle == ["me", "me"]
    assert "me -> me" in str(info.value)


def test_unknown_dependency_suggests_a_close_name(wf_name: str) -> None:
    with pytest.raises(UnknownDependencyError) as info:

        @workflow(name=wf_name)
        class wf:
            @task
            def collect_data(ctx: Context) -> None:
                pass

            @task(dependencies=["colect_data"])
            def process(ctx: Context) -> None:
                pass

    message = str(info.value)
    assert "'process'" in message
    assert "'colect_data'" in message
    assert "did you mean 'collect_data'?" in message
    assert isinstance(info.value, WorkflowDefinitionError)
    assert catalog.find(wf_name) is None


def test_unknown_dependency_without_a_close_name_has_no_suggestion(wf_name: str) -> None:
    with pytest.raises(UnknownDependencyError) as info:

        @workflow(name=wf_name)
        class wf:
            @task(dependencies=["zzzzzz"])
            def process(ctx: Context) -> None:
                pass

    assert "'zzzzzz'" in str(info.value)
    assert "did you mean" not in str(info.value)


def test_dependency_on_a_task_of_another_class_is_unknown(wf_name: str) -> None:
    @task
    def outsider(ctx: Context) -> None:
        pass

    with pytest.raises(UnknownDependencyError, match="outsider"):

        @workflow(name=wf_name)
        class wf:
            @task(dependencies=[outsider])
            def inner(ctx: Context) -> None:
                pass


def test_duplicate_task_id_is_rejected_naming_the_id(wf_name: str) -> None:
    with pytest.raises(DuplicateTaskError) as info:

        @workflow(name=wf_name)
        class wf:
            @task(id="same")
            def one(ctx: Context) -> None:
                pass

            @task(id="same")
            def two(ctx: Context) -> None:
                pass

    assert "'same'" in str(info.value)
    assert repr(wf_name) in str(info.value)
    assert catalog.find(wf_name) is None


def test_duplicate_dependency_entry_is_rejected(wf_name: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match="twice"):

        @workflow(name=wf_name)
        class wf:
            @task
            def a(ctx: Context) -> None:
                pass

            @task(dependencies=["a", a])
            def b(ctx: Context) -> None:
                pass


def test_workflow_without_tasks_is_rejected(wf_name: str) -> None:
    with pytest.raises(WorkflowDefinitionError) as info:

        @workflow(name=wf_name)
        class empty:
            def not_a_task(self) -> None:
                pass

    assert "no tasks" in str(info.value)
    assert repr(wf_name) in str(info.value)


@pytest.mark.parametrize("bad", ["1starts_with_digit", "has space", "a::b", "semi;colon", "é"])
def test_invalid_workflow_name_is_rejected(bad: str) -> None:
    with pytest.raises(WorkflowDefinitionError) as info:

        @workflow(name=bad)
        class wf:
            @task
            def t(ctx: Context) -> None:
                pass

    assert repr(bad) in str(info.value)
    assert catalog.find(bad) is None


@pytest.mark.parametrize("good", ["_private", "with.dots", "with-dash", "CamelCase9"])
def test_valid_workflow_names(good: str, new_name: Callable[..., str]) -> None:
    name = new_name(good)
    wf = Workflow.from_tasks(name, [task(id="t")(lambda ctx: None)])
    assert wf.name == name


@pytest.mark.parametrize("bad", ["", "has space", "a::b", "9"])
def test_invalid_package_name_is_rejected_at_once(bad: str) -> None:
    with pytest.raises(WorkflowDefinitionError) as info:
        packaged_workflow(name="whatever", package=bad)
    assert repr(bad) in str(info.value)


def test_workflow_decorates_only_classes(wf_name: str) -> None:
    def not_a_class() -> None:
        pass

    with pytest.raises(WorkflowDefinitionError, match="class"):
        workflow(name=wf_name)(not_a_class)  # type: ignore[type-var]


def test_workflow_of_rejects_other_objects_and_passes_workflows_through(wf_name: str) -> None:
    wf = Workflow.from_tasks(wf_name, [task(id="t")(lambda ctx: None)])
    assert workflow_of(wf) is wf
    with pytest.raises(WorkflowDefinitionError, match="not a @workflow class"):
        workflow_of(object())


def test_from_tasks_does_not_register(wf_name: str) -> None:
    Workflow.from_tasks(wf_name, [task(id="t")(lambda ctx: None)])
    assert catalog.find(wf_name) is None


def test_catalog_get_unknown_name_raises_lookup_error(wf_name: str) -> None:
    with pytest.raises(WorkflowNotFoundError) as info:
        catalog.get(wf_name)
    assert isinstance(info.value, LookupError)
    assert repr(wf_name) in str(info.value)


def test_redefinition_updates_latest_and_keeps_old_versions(wf_name: str) -> None:
    @workflow(name=wf_name)
    class v1:
        @task
        def a(ctx: Context) -> None:
            pass

    @workflow(name=wf_name)
    class v2:
        @task
        def a(ctx: Context) -> None:
            pass

        @task(dependencies=[a])
        def b(ctx: Context) -> None:
            pass

    old, new = workflow_of(v1), workflow_of(v2)
    assert old.version != new.version
    assert catalog.get(wf_name) is new
    assert catalog.find(wf_name, old.version) is old
    assert catalog.find(wf_name, new.version) is new
    assert {w.version for w in catalog.all_versions() if w.name == wf_name} == {
        old.version,
        new.version,
    }
    catalog.remove(wf_name)
    assert catalog.find(wf_name) is None
    assert catalog.find(wf_name, old.version) is None


def test_repr(wf_name: str) -> None:
    wf = Workflow.from_tasks(wf_name, [task(id="t")(lambda ctx: None)])
    assert repr(wf) == f"<Workflow {wf_name!r} tasks=1 version={wf.version[:12]}>"


@pytest.mark.parametrize("bad_id", ["has space", "x::y"])
def test_task_ids_that_cannot_form_a_namespace_are_rejected_at_definition(
    bad_id: str, wf_name: str
) -> None:
    with pytest.raises(WorkflowDefinitionError):
        Workflow.from_tasks(wf_name, [task(id=bad_id)(lambda ctx: None)])
