"""What a package's code can import (issue 9, item 20): the standard library, ``cloacina`` and
its own ``lib/``, never what is installed beside the runner. Building, registering and running
all import the code in that same process, so an undeclared dependency fails at build, with a
message that names the module and says to declare it, instead of on the next machine.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import cloacina
from cloacina import DefaultRunner
from cloacina.errors import PackageError
from cloacina.packaging.build import build

pytestmark = pytest.mark.timeout(60)

RunnerFactory = Callable[..., DefaultRunner]
PackageFactory = Callable[..., bytes]

#: Installed beside the runner (the project's own dependencies), so importable in this process.
RUNNER_ONLY = ("sqlalchemy", "rich")

FLOW = """\
from cloacina import Context, packaged_workflow, task

@packaged_workflow(name="NAME", package="PKG")
class flow:
    @task(id="probe")
    def probe(context: Context) -> None:
        BODY
"""


def flow_source(package: str, body: str = 'context.insert("ok", True)', head: str = "") -> str:
    text = FLOW.replace("NAME", f"{package}_flow").replace("PKG", package).replace("BODY", body)
    return head + text


def make_project(root: Path, package: str, flows: str) -> Path:
    files = {
        "pyproject.toml": f'[project]\nname = "{package}"\nversion = "1.0"\n',
        f"{package}/__init__.py": "",
        f"{package}/flows.py": flows,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def assert_declare_hint(message: str, module: str) -> None:
    assert f"No module named '{module}'" in message, message
    assert f"module {module!r} is neither in the standard library nor in the package" in message
    assert "[project].dependencies" in message, message


@pytest.mark.parametrize("module", RUNNER_ONLY)
def test_build_refuses_an_undeclared_dependency_installed_beside_the_runner(
    tmp_path: Path, module: str
) -> None:
    assert importlib.util.find_spec(module) is not None  # the runner has it...
    project = make_project(
        tmp_path / "proj", "leaky", flow_source("leaky", head=f"import {module}\n")
    )
    with pytest.raises(PackageError) as caught:
        build(project, log=lambda _: None)  # ...a package process does not
    assert_declare_hint(str(caught.value), module)
    assert "leaky/flows.py" in str(caught.value)  # the traceback names the project's file


def test_a_missing_submodule_of_the_project_gets_no_dependency_hint(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "proj", "subby", flow_source("subby", head="import subby.nowhere\n")
    )
    with pytest.raises(PackageError) as caught:
        build(project, log=lambda _: None)
    assert "No module named 'subby.nowhere'" in str(caught.value)
    assert "[project].dependencies" not in str(caught.value)


PROBE_BODY = """\
import sys, sysconfig
context.insert("path", list(sys.path))
context.insert("modules", sorted(sys.modules))
context.insert("stdlib", sysconfig.get_path("stdlib"))
context.insert("helper", __import__("vendored_helper").answer())
"""


def test_a_package_process_sees_the_standard_library_cloacina_and_its_lib_only(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    body = textwrap.indent(PROBE_BODY, " " * 8).strip()
    src = {
        "probe_pkg/__init__.py": "",
        "probe_pkg/flows.py": flow_source("probe_pkg", body),
        # A pure-Python dependency vendored into lib/ (as the build does): importable.
        "vendored_helper/__init__.py": "def answer() -> int:\n    return 42\n",
    }
    runner.register_workflow(make_package(tmp_path, "probe_pkg", "1.0", src, ["probe_pkg.flows"]))
    result = runner.execute("probe_pkg_flow", timeout=30)
    assert result.status == "completed", result.error
    ctx = result.final_context
    assert ctx["helper"] == 42

    path = ctx["path"]
    assert path[0].endswith("/lib")  # the package's own lib/ first
    # The rest is the standard library: no site-packages, no directory holding cloacina.
    assert all("site-packages" not in p and "dist-packages" not in p for p in path), path
    cloacina_home = str(Path(next(iter(cloacina.__path__))).parent)
    assert cloacina_home not in path
    # What is loaded besides the standard library is cloacina and the package's own modules.
    foreign = [
        m
        for m in ctx["modules"]
        if m.split(".")[0] not in sys.stdlib_module_names
        and m.split(".")[0] not in ("cloacina", "probe_pkg", "vendored_helper", "__main__")
        # The build's configuration, a standard-library module sys.stdlib_module_names does
        # not list (zoneinfo reads it through sysconfig).
        and not m.startswith("_sysconfigdata_")
    ]
    assert foreign == [], foreign
    assert "cloacina.store.base" not in ctx["modules"]  # the worker needs no store, no SQL


def test_a_package_registered_before_the_check_fails_its_task_with_the_hint(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A package that imports a runner-only module at import time, registered by a builder and
    registry that did not isolate (emulated by skipping the registry's import check): its
    tasks fail with the missing module and what to do, not with a bare traceback."""
    runner = make_package_runner()
    clean = {"old_pkg/__init__.py": "", "old_pkg/flows.py": flow_source("old_pkg")}
    leaky = {"old_pkg/flows.py": flow_source("old_pkg", head="import sqlalchemy\n")}
    data = make_package(tmp_path, "old_pkg", "1.0", clean, ["old_pkg.flows"], shipped_sources=leaky)
    with pytest.raises(PackageError) as caught:  # registering it today is refused...
        runner.register_workflow(data)
    assert_declare_hint(str(caught.value), "sqlalchemy")

    monkeypatch.setattr(runner.registry, "_validate_code", lambda archive: None)
    runner.register_workflow(data)  # ...but an older registry let it in
    result = runner.execute("old_pkg_flow", timeout=30)
    assert result.status == "failed"
    error = result.tasks["probe"].error or ""
    assert "failed to import" in error
    assert_declare_hint(error, "sqlalchemy")


def test_an_undeclared_import_inside_a_task_fails_the_task_with_the_hint(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    runner = make_package_runner()
    src = {
        "lazy_pkg/__init__.py": "",
        "lazy_pkg/flows.py": flow_source("lazy_pkg", "import rich  # only when the task runs"),
    }
    runner.register_workflow(make_package(tmp_path, "lazy_pkg", "1.0", src, ["lazy_pkg.flows"]))
    result = runner.execute("lazy_pkg_flow", timeout=30)
    assert result.status == "failed"
    assert_declare_hint(result.tasks["probe"].error or "", "rich")
