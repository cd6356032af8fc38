"""Reading a workflow project's ``pyproject.toml`` and finding its sources."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from cloacina.errors import PackageError
from cloacina.packaging.project import (
    discover_modules,
    import_name,
    include_files,
    load_project,
    source_files,
)


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def pyproject(name: str = "my-flows", extra: str = "", version: str = "1.2.0") -> str:
    return f'[project]\nname = "{name}"\nversion = "{version}"\n{extra}\n'


def test_import_name() -> None:
    assert import_name("My-Flows.io") == "my_flows_io"
    assert import_name("simple_demo") == "simple_demo"
    assert import_name("a--b__c") == "a_b_c"


def test_src_layout_discovers_package_and_submodules(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": pyproject(
                extra='description = "d"\nrequires-python = ">=3.11"\n'
                'authors = [{name = "Ann", email = "ann@x.org"}, {name = "Bob"}]\n'
                'dependencies = ["six>=1"]\n'
            ),
            "src/my_flows/__init__.py": "",
            "src/my_flows/workflows.py": "",
            "src/my_flows/__main__.py": "",
            "src/my_flows/sub/__init__.py": "",
            "src/my_flows/sub/more.py": "",
            "src/my_flows/data/table.csv": "a,b\n",  # not a package: shipped, not imported
            "src/my_flows/__pycache__/x.cpython-311.pyc": "",
            "src/my_flows/.hidden": "",
            "src/my_flows.egg-info/PKG-INFO": "",
            "tests/test_x.py": "",
        },
    )
    project = load_project(tmp_path)
    assert project.layout == "src"
    assert project.source_root == tmp_path / "src"
    assert project.package == "my_flows"
    assert project.version == "1.2.0"
    assert project.author == "Ann <ann@x.org>, Bob"
    assert project.description == "d" and project.requires_python == ">=3.11"
    assert project.dependencies == ("six>=1",)
    assert not project.modules_configured
    assert project.modules == (
        "my_flows",
        "my_flows.sub",
        "my_flows.sub.more",
        "my_flows.workflows",
    )
    assert list(source_files(project)) == [
        "my_flows/__init__.py",
        "my_flows/__main__.py",
        "my_flows/data/table.csv",
        "my_flows/sub/__init__.py",
        "my_flows/sub/more.py",
        "my_flows/workflows.py",
    ]


def test_flat_layout_with_configured_modules_and_package(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": pyproject(
                "whatever",
                extra='[tool.cloacina]\npackage = "team_flows"\nmodules = ["flows.a", "helpers"]\n',
            ),
            "flows/__init__.py": "",
            "flows/a.py": "",
            "helpers.py": "",
            "setup.py": "",
        },
    )
    project = load_project(tmp_path)
    assert project.layout == "flat"
    assert project.package == "team_flows"
    assert project.modules == ("flows.a", "helpers")
    assert project.modules_configured
    assert project.top_level == ("flows", "helpers")
    assert list(source_files(project)) == ["flows/__init__.py", "flows/a.py", "helpers.py"]


def test_the_only_package_is_taken_when_the_name_does_not_match(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": pyproject("distribution-name"),
            "src/actual_pkg/__init__.py": "",
            "tests/__init__.py": "",
        },
    )
    assert load_project(tmp_path).top_level == ("actual_pkg",)


def test_discover_modules_of_a_single_module(tmp_path: Path) -> None:
    write(tmp_path, {"flows.py": ""})
    assert discover_modules(tmp_path, "flows") == ["flows"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no pyproject.toml"),
        ({"pyproject.toml": "[project\n"}, "cannot read"),
        ({"pyproject.toml": '[project]\nversion = "1"\n'}, "needs a name"),
        (
            {"pyproject.toml": '[project]\nname = "x"\ndynamic = ["version"]\n'},
            "dynamic version",
        ),
        ({"pyproject.toml": pyproject("x", version="1/2")}, "file name"),
        ({"pyproject.toml": pyproject("x")}, "no Python package named 'x'"),
        (
            {"pyproject.toml": pyproject("x"), "a/__init__.py": "", "b/__init__.py": ""},
            "cannot tell which package",
        ),
        (
            {"pyproject.toml": pyproject("x", extra='[tool.cloacina]\nmodules = ["nope.flows"]')},
            "cannot find nope",
        ),
        (
            {
                "pyproject.toml": pyproject("x", extra='[tool.cloacina]\nmodules = ["x.missing"]'),
                "x/__init__.py": "",
            },
            "has no file",
        ),
        (
            {"pyproject.toml": pyproject("x", extra="[tool.cloacina]\nmodules = []")},
            "modules is empty",
        ),
        (
            {"pyproject.toml": pyproject("x", extra='[tool.cloacina]\nmodules = ["a-b"]')},
            "not a module name",
        ),
        (
            {"pyproject.toml": pyproject("x", extra='[tool.cloacina]\npackage = "bad name"')},
            "package name 'bad name' is invalid",
        ),
        (
            {"pyproject.toml": pyproject("x", extra="dependencies = [1]"), "x/__init__.py": ""},
            "dependencies must be a list of strings",
        ),
    ],
)
def test_project_errors(tmp_path: Path, files: dict[str, str], message: str) -> None:
    write(tmp_path, files)
    with pytest.raises(PackageError, match=message):
        load_project(tmp_path)


def test_include_globs_keep_relative_paths(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": pyproject(
                "x", extra='[tool.cloacina]\ninclude = ["bin/*.sh", "assets"]'
            ),
            "x/__init__.py": "",
            "bin/enrich.sh": "#!/bin/sh\n",
            "bin/notes.txt": "",
            "assets/a.json": "{}",
            "assets/deep/b.json": "{}",
        },
    )
    files = include_files(load_project(tmp_path))
    assert list(files) == ["assets/a.json", "assets/deep/b.json", "bin/enrich.sh"]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("bin/*.sh", "matches no file"), ("../elsewhere/*", "without '..'"), ("/etc/*", "relative")],
)
def test_include_errors(tmp_path: Path, pattern: str, message: str) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": pyproject("x", extra=f'[tool.cloacina]\ninclude = ["{pattern}"]'),
            "x/__init__.py": "",
        },
    )
    with pytest.raises(PackageError, match=message):
        include_files(load_project(tmp_path))


def test_a_source_linking_outside_the_project_is_refused(tmp_path: Path) -> None:
    project_dir = tmp_path / "proj"
    write(project_dir, {"pyproject.toml": pyproject("x"), "x/__init__.py": ""})
    (tmp_path / "secret.py").write_text("TOKEN = 1\n")
    os.symlink(tmp_path / "secret.py", project_dir / "x" / "secret.py")
    with pytest.raises(PackageError, match="outside the project"):
        source_files(load_project(project_dir))
