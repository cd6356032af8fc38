"""The ``map_over`` options of ``@task`` (DESIGN §11): checked at decoration, part of the
workflow's version, carried by a package's manifest."""

from __future__ import annotations

import pytest

from cloacina import Context, task
from cloacina.errors import WorkflowDefinitionError
from cloacina.model.version import compute_version
from cloacina.packaging.command import command_task
from cloacina.packaging.manifest import TaskSpec, WorkflowSpec, describe_task, workflow_from_spec


def body(context: Context) -> None:
    return None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"map_over": ""}, "map_over must name a context key"),
        ({"map_over": 3}, "map_over must name a context key"),
        ({"map_over": "f", "max_parallel": 0}, "max_parallel must be a positive integer"),
        ({"map_over": "f", "max_parallel": True}, "max_parallel must be a positive integer"),
        ({"max_parallel": 4}, "apply to a mapped task"),
        ({"allow_partial": True}, "apply to a mapped task"),
    ],
)
def test_bad_options_are_refused_naming_the_task(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match=message) as info:
        task(id="t", **kwargs)(body)  # type: ignore[call-overload]
    assert "'t'" in str(info.value)


def test_the_options_are_part_of_the_version_only_when_set() -> None:
    plain = task(id="t")(body)
    mapped = task(id="t", map_over="files")(body)
    limited = task(id="t", map_over="files", max_parallel=5)(body)
    versions = {compute_version("wf", [t]) for t in (plain, mapped, limited)}
    assert len(versions) == 3
    assert plain.map_over is None and plain.max_parallel is None and not plain.allow_partial


def test_the_manifest_carries_the_options() -> None:
    mapped = task(id="t", map_over="files", max_parallel=5, allow_partial=True)(body)
    spec = describe_task(mapped, "t")
    again = TaskSpec.from_data(spec.to_data())
    assert again.map == {"over": "files", "max_parallel": 5, "allow_partial": True}
    assert "map" not in describe_task(task(id="p")(body), "p").to_data()
    command = command_task(id="c", command=["bin/c.sh"], map_over="files")
    wf = workflow_from_spec(
        WorkflowSpec(
            name="w",
            version="v",
            module="m",
            qualname="q",
            tasks=(again, describe_task(command, "")),
        ),
        "pkg",
    )
    assert (wf.tasks["t"].map_over, wf.tasks["t"].max_parallel) == ("files", 5)
    assert wf.tasks["t"].allow_partial
    assert (wf.tasks["c"].map_over, wf.tasks["c"].max_parallel) == ("files", None)
