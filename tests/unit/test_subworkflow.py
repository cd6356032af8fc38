"""``subworkflow(...)`` as a model: a task in a workflow's body, part of the version, and a
workflow that names itself through sub-workflows refused when decorated (no database)."""

from __future__ import annotations

import itertools

import pytest

from cloacina import CloacinaError, Context, TaskError, Workflow, subworkflow, task, workflow
from cloacina.errors import WorkflowDefinitionError
from cloacina.model.workflow import catalog

_ids = itertools.count()


def _name(prefix: str) -> str:
    return f"{prefix}_sub_unit_{next(_ids)}"


def test_a_subworkflow_is_a_task_of_its_workflow_and_of_its_version() -> None:
    child, parent = _name("child"), _name("parent")

    @workflow(name=parent)
    class _parent:
        @task
        def prepare(context: Context) -> None: ...

        etl = subworkflow(id="etl", workflow=child, dependencies=[prepare])

    wf = catalog.get(parent)
    assert list(wf.tasks) == ["prepare", "etl"]
    assert wf.tasks["etl"].subworkflow == child
    assert wf.tasks["etl"].dependencies == ("prepare",)
    other = Workflow.from_tasks(
        parent,
        [
            wf.tasks["prepare"],
            subworkflow(id="etl", workflow=child + "x", dependencies=["prepare"]),
        ],
    )
    assert other.version != wf.version  # the child it runs is part of the structure
    with pytest.raises(TaskError, match="sub-workflow"):
        wf.tasks["etl"](Context())  # no body to call directly


def test_a_workflow_naming_itself_is_refused_when_decorated() -> None:
    me = _name("self")
    with pytest.raises(CloacinaError, match=rf"{me} -> {me}"):

        @workflow(name=me)
        class _me:
            again = subworkflow(id="again", workflow=me)

    assert catalog.find(me) is None  # refused: not registered


def test_a_cycle_through_other_workflows_is_refused_where_it_can_be_seen() -> None:
    a, b, c = _name("a"), _name("b"), _name("c")

    @workflow(name=a)
    class _a:  # b is not known yet: nothing to see
        to_b = subworkflow(id="to_b", workflow=b)

    @workflow(name=b)
    class _b:  # c is not known yet either
        to_c = subworkflow(id="to_c", workflow=c)

    with pytest.raises(WorkflowDefinitionError, match=rf"{c} -> {a} -> {b} -> {c}"):

        @workflow(name=c)
        class _c:
            @task
            def first(context: Context) -> None: ...

            to_a = subworkflow(id="to_a", workflow=a, dependencies=[first])

    assert catalog.find(c) is None


def test_bad_subworkflow_arguments() -> None:
    with pytest.raises(WorkflowDefinitionError, match="workflow="):
        subworkflow(id="x", workflow="")
    with pytest.raises(WorkflowDefinitionError, match="invalid task id"):
        subworkflow(id="no spaces", workflow="w")
