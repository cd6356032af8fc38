"""A workflow's ``deadline=``: checked when declared, kept out of the version, and carried by
a package's manifest to the workflow the runner schedules."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from cloacina import Context, WorkflowDefinitionError, packaged_workflow, task, workflow
from cloacina.model.workflow import workflow_of
from cloacina.packaging.manifest import Manifest, describe_workflow, workflow_from_spec


def _name() -> str:
    return f"deadline_{uuid.uuid4().hex[:10]}"


def test_deadline_in_seconds_or_a_timedelta_and_not_in_the_version() -> None:
    name = _name()

    @workflow(name=name, deadline=timedelta(minutes=2))
    class Timed:
        @task
        def a(context: Context) -> None:
            pass

    @workflow(name=_name())
    class Untimed:
        @task
        def a(context: Context) -> None:
            pass

    timed, untimed = workflow_of(Timed), workflow_of(Untimed)
    assert timed.deadline == 120.0
    assert untimed.deadline is None

    # The same tasks under another name differ by name only: the deadline adds nothing.
    @workflow(name=name + "_b", deadline=5)
    class Again:
        @task
        def a(context: Context) -> None:
            pass

    @workflow(name=name + "_c")
    class Plain:
        @task
        def a(context: Context) -> None:
            pass

    assert workflow_of(Again).deadline == 5.0
    from cloacina.model.version import compute_version

    assert workflow_of(Again).version == compute_version(
        name + "_b", list(workflow_of(Plain).tasks.values())
    )


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "10"])
def test_a_bad_deadline_is_refused(bad: object) -> None:
    with pytest.raises(WorkflowDefinitionError, match="invalid deadline"):

        @workflow(name=_name(), deadline=bad)  # type: ignore[arg-type]
        class Bad:
            @task
            def a(context: Context) -> None:
                pass


def test_the_manifest_carries_the_deadline() -> None:
    @packaged_workflow(name=_name(), package="deadlines", deadline=90)
    class Packaged:
        @task
        def a(context: Context) -> None:
            pass

    spec = describe_workflow(workflow_of(Packaged))
    assert spec.deadline == 90.0
    manifest = Manifest(package="deadlines", version="1.0.0", workflows=(spec,), modules=("m",))
    (read,) = Manifest.from_toml(manifest.to_toml()).workflows
    assert read.deadline == 90.0
    assert workflow_from_spec(read, "deadlines").deadline == 90.0

    no_deadline = Manifest(
        package="deadlines",
        version="1.0.0",
        workflows=(spec.__class__(**{**spec.__dict__, "deadline": None}),),
        modules=("m",),
    )
    assert "deadline =" not in no_deadline.to_toml()
    (plain,) = Manifest.from_toml(no_deadline.to_toml()).workflows
    assert plain.deadline is None
