"""Which workflow a name means (issue 9, items 7 and 18), on SQLite and PostgreSQL with real
package processes: a package cannot silently take over another package's workflow name,
``package::workflow`` / ``workflow@version`` / ``package::workflow@version`` pick one, the
highest version (not the last registered) is the default, and a promotion is stored so that
every runner on the database follows it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cloacina import DefaultRunner
from cloacina.errors import (
    ConflictError,
    PackageError,
    PackageNotFoundError,
    WorkflowNameConflictError,
    WorkflowNotFoundError,
)

pytestmark = pytest.mark.timeout(120)

RunnerFactory = Callable[..., DefaultRunner]
PackageFactory = Callable[..., bytes]

FLOW = """
from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="WORKFLOW", package="PACKAGE")
class flow:
    @task(id="mark")
    def mark(context: Context) -> None:
        context.insert("ran", "LABEL")
"""


def package(
    tmp_path: Path, make: PackageFactory, name: str, version: str, workflow: str, label: str
) -> bytes:
    """A package ``name`` ``version`` whose workflow ``workflow`` records ``label``."""
    body = (
        textwrap.dedent(FLOW)
        .replace("WORKFLOW", workflow)
        .replace("PACKAGE", name)
        .replace("LABEL", label)
    )
    return make(
        tmp_path,
        name,
        version,
        {f"{name}/__init__.py": "", f"{name}/flows.py": body},
        [f"{name}.flows"],
    )


def origin(runner: DefaultRunner, name: str) -> tuple[str, str]:
    """(package, package version) of the workflow ``name`` resolves to."""
    wf = runner.resolve(name)
    assert wf.origin is not None, f"{name} resolved to a workflow of this process"
    return wf.origin.package, wf.origin.version


def test_a_package_cannot_take_over_another_packages_workflow_name(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    runner.register_workflow(package(tmp_path, make_package, "alpha", "1.0", "etl", "alpha"))
    intruder = package(tmp_path, make_package, "beta", "1.0", "etl", "beta")

    # Before the fix this registered, and `etl` then ran beta's code.
    with pytest.raises(WorkflowNameConflictError) as refused:
        runner.register_workflow(intruder)
    message = str(refused.value)
    for part in ("'etl'", "alpha", "beta", "--replace", "replace=True", "alpha::etl"):
        assert part in message, message
    assert (refused.value.workflow, refused.value.package) == ("etl", "beta")
    assert refused.value.other_package == "alpha"
    assert isinstance(refused.value, PackageError) and isinstance(refused.value, ConflictError)
    assert [p.package for p in runner.list_packages()] == ["alpha"]
    assert origin(runner, "etl") == ("alpha", "1.0")
    assert runner.execute("etl", timeout=30).final_context["ran"] == "alpha"

    # A new version of the package that owns the name is no collision.
    runner.register_workflow(package(tmp_path, make_package, "alpha", "1.1", "etl", "alpha11"))
    assert origin(runner, "etl") == ("alpha", "1.1")

    # Asked for: beta's becomes the default, alpha's stays reachable by its package.
    runner.register_workflow(intruder, replace=True)
    assert origin(runner, "etl") == ("beta", "1.0")
    assert origin(runner, "alpha::etl") == ("alpha", "1.1")
    assert origin(runner, "alpha::etl@1.0") == ("alpha", "1.0")
    assert origin(runner, "beta::etl") == ("beta", "1.0")
    assert runner.execute("etl", timeout=30).final_context["ran"] == "beta"
    assert runner.execute("alpha::etl", timeout=30).final_context["ran"] == "alpha11"
    # workflow@version: the version of the package that owns the name, else the one package
    # that has it
    assert origin(runner, "etl@1.0") == ("beta", "1.0")
    assert origin(runner, "etl@1.1") == ("alpha", "1.1")

    # Now beta owns the name: a new alpha version is the collision.
    with pytest.raises(WorkflowNameConflictError, match="package beta already provides"):
        runner.register_workflow(package(tmp_path, make_package, "alpha", "1.2", "etl", "alpha12"))

    # A second runner on the database agrees (it is all stored).
    other = make_package_runner(execute_tasks=False)
    assert origin(other, "etl") == ("beta", "1.0")
    assert origin(other, "alpha::etl") == ("alpha", "1.1")

    # Without beta, the name is alpha's again.
    runner.unregister_workflow("beta", "1.0")
    assert origin(runner, "etl") == ("alpha", "1.1")


def test_the_highest_version_is_the_default_unless_one_is_promoted(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    watcher = make_package_runner(execute_tasks=False)  # another process on the database
    for version in ("0.10.0", "0.9.0"):  # the lower one registered last
        runner.register_workflow(package(tmp_path, make_package, "vers", version, "vflow", version))

    # Before the fix, 0.9.0 (registered last) became the default.
    assert origin(runner, "vflow") == ("vers", "0.10.0")
    assert runner.execute("vflow", timeout=30).final_context["ran"] == "0.10.0"
    watcher.registry.sync()
    assert origin(watcher, "vflow") == ("vers", "0.10.0")
    defaults = {(p.version, p.default, p.promoted) for p in runner.list_packages()}
    assert defaults == {("0.10.0", True, False), ("0.9.0", False, False)}

    # Every way of naming a version.
    assert runner.execute("vflow@0.9.0", timeout=30).final_context["ran"] == "0.9.0"
    assert origin(runner, "vers::vflow@0.9.0") == ("vers", "0.9.0")
    assert origin(runner, "vers::vflow") == ("vers", "0.10.0")

    # A promotion pins the default, in the database: the other runner follows on its poll.
    runner.promote_package("vers", "0.9.0")
    assert origin(runner, "vflow") == ("vers", "0.9.0")
    assert watcher.registry.sync(), "a promotion must change what runners poll for"
    assert origin(watcher, "vflow") == ("vers", "0.9.0")
    assert origin(make_package_runner(execute_tasks=False), "vflow") == ("vers", "0.9.0")
    assert runner.execute("vflow", timeout=30).final_context["ran"] == "0.9.0"
    defaults = {(p.version, p.default, p.promoted) for p in runner.list_packages()}
    assert defaults == {("0.10.0", False, False), ("0.9.0", True, True)}

    # A higher version registered later does not override the promotion...
    runner.register_workflow(package(tmp_path, make_package, "vers", "1.0.0", "vflow", "1.0.0"))
    assert origin(runner, "vflow") == ("vers", "0.9.0")
    # ...until the promotion is undone: the highest again.
    runner.promote_package("vers", None)
    assert origin(runner, "vflow") == ("vers", "1.0.0")
    assert watcher.registry.sync()
    assert origin(watcher, "vflow") == ("vers", "1.0.0")

    # Promote again, then remove the promoted version: back to the highest, and
    # registering that version again later does not bring back its old promotion.
    runner.promote_package("vers", "0.10.0")
    assert origin(runner, "vflow") == ("vers", "0.10.0")
    runner.unregister_workflow("vers", "0.10.0")
    assert origin(runner, "vflow") == ("vers", "1.0.0")
    assert watcher.registry.sync()
    assert origin(watcher, "vflow") == ("vers", "1.0.0")
    assert not any(p.promoted for p in runner.list_packages())
    runner.register_workflow(package(tmp_path, make_package, "vers", "0.10.0", "vflow", "again"))
    assert origin(runner, "vflow") == ("vers", "1.0.0")

    with pytest.raises(PackageNotFoundError, match=r"no version 7\.0 .*0\.9\.0, 0\.10\.0, 1\.0\.0"):
        runner.promote_package("vers", "7.0")
    with pytest.raises(PackageNotFoundError, match="no package nope is registered"):
        runner.promote_package("nope", "1.0")


def test_names_that_name_nothing_say_what_there_is(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner(execute_tasks=False)
    runner.register_workflow(package(tmp_path, make_package, "nm", "1.0", "nflow", "x"))
    runner.register_workflow(package(tmp_path, make_package, "nm", "2.0", "nflow", "y"))
    cases = {
        "nflow@3.0": r"no registered version 3\.0 has workflow 'nflow' \(nm has 1\.0, 2\.0\)",
        "other::nflow": "package other has no workflow 'nflow' registered; nm has one",
        "nm::missing": "no registered package has a workflow named 'missing'",
        "a::b::c": "cannot read the workflow name",
        "nflow@": "cannot read the workflow name",
        "::nflow": "cannot read the workflow name",
    }
    for name, message in cases.items():
        with pytest.raises(WorkflowNotFoundError, match=message):
            runner.resolve(name)
        with pytest.raises(WorkflowNotFoundError):
            runner.schedule_workflow(name)
    assert runner.list_executions() == []
