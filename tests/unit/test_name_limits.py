"""Names longer than the database holds are refused where they are defined (issue 9.5).

SQLite does not enforce VARCHAR lengths and PostgreSQL does, so without these checks a name
that works on SQLite fails on PostgreSQL with "value too long for type character varying".
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cloacina import Context, packaged_workflow, task, workflow
from cloacina.errors import PackageError, WorkflowDefinitionError
from cloacina.model.namespace import (
    MAX_PACKAGE_NAME,
    MAX_PACKAGE_VERSION,
    MAX_TASK_ID,
    MAX_WORKFLOW_NAME,
    MAX_WORKFLOW_VERSION,
)
from cloacina.model.workflow import Workflow
from cloacina.packaging.archive import read_archive, write_archive
from cloacina.packaging.manifest import Manifest, TaskSpec, WorkflowSpec
from cloacina.packaging.project import load_project
from cloacina.store import tables


def _noop(context: Context) -> None:
    pass


def test_limits_are_the_column_sizes() -> None:
    """The limits follow the schema: a column made narrower or wider must move them too."""

    def length(column: object) -> int:
        return int(column.type.length)  # type: ignore[attr-defined]

    for table in (tables.task_executions, tables.task_outputs, tables.execution_events):
        assert length(table.c.task_id) == MAX_TASK_ID
    for table in (tables.workflow_executions, tables.package_workflows):
        assert length(table.c.workflow_name) == MAX_WORKFLOW_NAME
    assert length(tables.workflow_executions.c.package) == MAX_PACKAGE_NAME
    assert length(tables.workflow_packages.c.package) == MAX_PACKAGE_NAME
    assert length(tables.workflow_packages.c.version) == MAX_PACKAGE_VERSION
    for table in (tables.workflow_executions, tables.package_workflows):
        assert length(table.c.workflow_version) == MAX_WORKFLOW_VERSION


# ---- task ids ----------------------------------------------------------------------------------
def test_task_id_at_the_limit_is_accepted() -> None:
    assert task(id="t" * MAX_TASK_ID)(_noop).id == "t" * MAX_TASK_ID


def test_task_id_over_the_limit_is_refused_with_length_and_limit() -> None:
    long_id = "t" * (MAX_TASK_ID + 1)
    with pytest.raises(WorkflowDefinitionError) as info:
        task(id=long_id)(_noop)
    message = str(info.value)
    assert "task id 'tttt" in message
    assert f"is {MAX_TASK_ID + 1} characters long" in message
    assert f"over the limit of {MAX_TASK_ID}" in message
    assert long_id not in message  # a shortened name, not 256 characters of it


def test_a_long_function_name_is_refused_as_a_task_id() -> None:
    namespace: dict[str, object] = {}
    name = "f" * (MAX_TASK_ID + 5)
    exec(f"def {name}(context):\n    pass\n", namespace)
    with pytest.raises(WorkflowDefinitionError, match=f"limit of {MAX_TASK_ID}"):
        task(namespace[name])  # type: ignore[call-overload]


# ---- workflow names ----------------------------------------------------------------------------
def test_workflow_name_at_the_limit_is_accepted(new_name: Callable[..., str]) -> None:
    name = new_name("w")
    name += "w" * (MAX_WORKFLOW_NAME - len(name))

    @workflow(name=name)
    class flow:
        @task
        def a(context: Context) -> None:
            pass

    assert flow.__cloacina_workflow__.name == name  # type: ignore[attr-defined]


@pytest.mark.parametrize("decorator", ["workflow", "packaged_workflow"])
def test_workflow_name_over_the_limit_is_refused(decorator: str) -> None:
    name = "w" * (MAX_WORKFLOW_NAME + 1)
    decorate = (
        workflow(name=name) if decorator == "workflow" else packaged_workflow(name, package="p")
    )
    with pytest.raises(WorkflowDefinitionError) as info:

        @decorate
        class flow:
            @task
            def a(context: Context) -> None:
                pass

    assert "workflow name 'www" in str(info.value)
    assert f"{MAX_WORKFLOW_NAME + 1} characters long" in str(info.value)
    assert f"limit of {MAX_WORKFLOW_NAME}" in str(info.value)


def test_a_long_class_name_is_refused_as_a_workflow_name() -> None:
    namespace: dict[str, object] = {"task": task, "Context": Context}
    name = "C" * (MAX_WORKFLOW_NAME + 1)
    source = f"""
        class {name}:
            @task
            def a(context: Context) -> None:
                pass
    """
    exec(textwrap.dedent(source), namespace)
    with pytest.raises(WorkflowDefinitionError, match=f"limit of {MAX_WORKFLOW_NAME}"):
        workflow()(namespace[name])  # type: ignore[type-var]


# ---- package names -----------------------------------------------------------------------------
def test_package_name_at_the_limit_is_accepted(new_name: Callable[..., str]) -> None:
    package = "p" * MAX_PACKAGE_NAME

    @packaged_workflow(new_name("pk"), package=package)
    class flow:
        @task
        def a(context: Context) -> None:
            pass

    assert flow.__cloacina_workflow__.package == package  # type: ignore[attr-defined]


def test_package_name_over_the_limit_is_refused_at_once() -> None:
    with pytest.raises(WorkflowDefinitionError) as info:
        packaged_workflow("w", package="p" * (MAX_PACKAGE_NAME + 1))
    assert f"{MAX_PACKAGE_NAME + 1} characters long" in str(info.value)
    assert f"limit of {MAX_PACKAGE_NAME}" in str(info.value)


def test_from_tasks_checks_the_package_too() -> None:
    """A manifest's workflows are built with ``from_tasks``, not the decorator."""
    with pytest.raises(WorkflowDefinitionError, match=f"limit of {MAX_PACKAGE_NAME}"):
        Workflow.from_tasks("w", [task(_noop)], package="p" * (MAX_PACKAGE_NAME + 1))
    with pytest.raises(WorkflowDefinitionError, match="invalid package name"):
        Workflow.from_tasks("w", [task(_noop)], package="no spaces")


# ---- the builder -------------------------------------------------------------------------------
def _project(root: Path, pyproject: str, package: str = "flows") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(pyproject), encoding="utf-8")
    (root / package).mkdir(exist_ok=True)
    (root / package / "__init__.py").write_text("", encoding="utf-8")
    return root


def test_project_package_name_over_the_limit_is_refused(tmp_path: Path) -> None:
    long = "p" * (MAX_PACKAGE_NAME + 1)
    root = _project(tmp_path / "a", f'[project]\nname = "{long}"\nversion = "1.0"\n', package=long)
    with pytest.raises(PackageError) as info:
        load_project(root)
    message = str(info.value)
    assert f"{MAX_PACKAGE_NAME + 1} characters long" in message
    assert f"limit of {MAX_PACKAGE_NAME}" in message
    assert "[tool.cloacina] package" in message  # how to fix it without renaming

    ok = _project(
        tmp_path / "b",
        f'[project]\nname = "{long}"\nversion = "1.0"\n[tool.cloacina]\npackage = "flows"\n',
    )
    assert load_project(ok).package == "flows"


def test_project_version_over_the_limit_is_refused(tmp_path: Path) -> None:
    version = "1." + "0" * MAX_PACKAGE_VERSION
    root = _project(tmp_path, f'[project]\nname = "flows"\nversion = "{version}"\n')
    with pytest.raises(PackageError) as info:
        load_project(root)
    assert f"{len(version)} characters long" in str(info.value)
    assert f"limit of {MAX_PACKAGE_VERSION}" in str(info.value)

    at_limit = "1." + "0" * (MAX_PACKAGE_VERSION - 2)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "flows"\nversion = "{at_limit}"\n', encoding="utf-8"
    )
    assert load_project(root).version == at_limit


# ---- manifests not written by the builder ------------------------------------------------------
def _manifest(
    package: str = "pkg", version: str = "1.0", wf_version: str = "a" * 64, task_id: str = "t"
) -> Manifest:
    task_spec = TaskSpec(
        id=task_id,
        function="t",
        dependencies=(),
        is_async=False,
        timeout=None,
        retry={},
        trigger_rule={"kind": "all_success"},
    )
    spec = WorkflowSpec(
        name="wf", version=wf_version, module="pkg.flows", qualname="wf", tasks=(task_spec,)
    )
    return Manifest(package=package, version=version, workflows=(spec,), modules=("pkg.flows",))


@pytest.mark.parametrize(
    ("kwargs", "kind", "limit"),
    [
        ({"package": "p" * (MAX_PACKAGE_NAME + 1)}, "package name", MAX_PACKAGE_NAME),
        ({"version": "1" * (MAX_PACKAGE_VERSION + 1)}, "package version", MAX_PACKAGE_VERSION),
        ({"wf_version": "a" * (MAX_WORKFLOW_VERSION + 1)}, "version of workflow 'wf'", 64),
        ({"task_id": "t" * (MAX_TASK_ID + 1)}, "task id", MAX_TASK_ID),
    ],
)
def test_a_crafted_manifest_with_a_long_name_is_refused_when_read(
    kwargs: dict[str, str], kind: str, limit: int
) -> None:
    manifest = _manifest(**kwargs)
    with pytest.raises(PackageError) as info:
        Manifest.from_toml(manifest.to_toml())
    assert f"manifest.toml: {kind}" in str(info.value)
    assert f"limit of {limit}" in str(info.value)

    archive = write_archive(
        {"manifest.toml": manifest.to_toml().encode()},
        {"package": manifest.package, "version": manifest.version},
    )
    with pytest.raises(PackageError, match=f"limit of {limit}"):
        read_archive(archive)


def test_a_manifest_at_the_limits_is_read() -> None:
    manifest = _manifest(
        package="p" * MAX_PACKAGE_NAME,
        version="1" * MAX_PACKAGE_VERSION,
        task_id="t" * MAX_TASK_ID,
    )
    assert Manifest.from_toml(manifest.to_toml()) == manifest
