"""``command_task``: a task whose work is an executable shipped in the package."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cloacina import Context, RetryPolicy, task
from cloacina.errors import PackageError, WorkflowDefinitionError
from cloacina.model.workflow import packaged_workflow, workflow_of
from cloacina.packaging.command import CommandTask, command_task
from cloacina.packaging.manifest import Manifest, describe_workflow, workflow_from_spec


def make(name: str, command: list[str]) -> Any:
    @packaged_workflow(name=name, package="cmd_pkg")
    class flow:
        @task()
        def extract(context: Context) -> None:
            context.insert("rows", 3)

        enrich = command_task(
            id="enrich",
            command=command,
            dependencies=[extract],
            retry=RetryPolicy(max_attempts=2, initial_delay=0.1),
            timeout=30,
        )

    return flow


def test_command_task_is_a_task_with_a_command(new_name: Callable[..., str]) -> None:
    flow = make(new_name(), ["bin/enrich.sh", "--fast"])
    assert isinstance(flow.enrich, CommandTask)
    assert flow.enrich.command == ("bin/enrich.sh", "--fast")
    assert flow.enrich.dependencies == ("extract",)
    assert flow.enrich.timeout == 30.0
    assert not flow.enrich.is_async


def test_the_manifest_describes_the_command(new_name: Callable[..., str]) -> None:
    name = new_name()
    spec = describe_workflow(workflow_of(make(name, ["bin/enrich.sh"])))
    enrich = spec.tasks[1]
    assert enrich.id == "enrich"
    assert enrich.command == ("bin/enrich.sh",)
    assert enrich.function == "enrich"
    assert enrich.retry["max_attempts"] == 2
    # through TOML and back, and into a schedulable workflow that keeps the command
    manifest = Manifest("cmd_pkg", "1", (spec,), ("m",))
    again = Manifest.from_toml(manifest.to_toml()).workflows[0]
    assert again.tasks[1].command == ("bin/enrich.sh",)
    wf = workflow_from_spec(again, "cmd_pkg")
    assert getattr(wf.tasks["enrich"], "command", None) == ("bin/enrich.sh",)
    assert getattr(wf.tasks["extract"], "command", None) is None


def test_the_command_is_part_of_the_version(new_name: Callable[..., str]) -> None:
    name = new_name()  # one name: the version hashes the name too

    def version(command: list[str]) -> str:
        return str(workflow_of(make(name, command)).version)

    assert version(["bin/a.sh"]) == version(["bin/a.sh"])
    assert version(["bin/a.sh"]) != version(["bin/b.sh"])
    assert version(["bin/a.sh"]) != version(["bin/a.sh", "--flag"])


def test_calling_it_outside_a_package_fails_clearly(new_name: Callable[..., str]) -> None:
    flow = make(new_name(), ["bin/enrich.sh"])
    with pytest.raises(PackageError, match=r"exists only inside a built .cloacina package"):
        flow.enrich(Context())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": "x", "command": []}, "non-empty"),
        ({"id": "x", "command": "bin/run.sh"}, "list of strings"),
        ({"id": "x", "command": ["bin/run.sh", 3]}, "non-empty strings"),
        ({"id": "x", "command": ["/usr/bin/env"]}, "relative"),
        ({"id": "x", "command": ["../outside.sh"]}, "relative"),
        ({"id": "", "command": ["bin/run.sh"]}, "needs an id"),
        ({"id": "bad id", "command": ["bin/run.sh"]}, "invalid task id"),
        ({"id": "x", "command": ["bin/run.sh"], "timeout": -1}, "timeout"),
    ],
)
def test_invalid_command_tasks(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match=message):
        command_task(**kwargs)
