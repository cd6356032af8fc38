"""``cloacina package new``: a new workflow project that builds, tests and runs as it is."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cloacina.errors import PackageError
from cloacina.model.namespace import MAX_PACKAGE_NAME
from cloacina.packaging.project import import_name, is_identifier

#: A project name as PEP 508 has it (what pip and setuptools accept in ``[project].name``).
_PROJECT_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
#: Import names a project's package must not take, and what it would shadow: on the project's
#: path (its tests, its package's processes) the project's package would be imported instead.
_TAKEN = {
    "cloacina": "the cloacina library itself",
    **{
        dep: f"{dep} (which cloacina needs)"
        for dep in ("sqlalchemy", "alembic", "click", "rich", "cryptography", "psycopg")
    },
    "pytest": "pytest (which runs the project's tests)",
    "tests": "the project's tests directory",
}

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
description = "Cloacina workflows of {name}"
readme = "README.md"
requires-python = ">=3.11"
# Pure-Python dependencies are vendored into the package by `cloacina package build`;
# cloacina itself is provided by the runner and is never vendored.
dependencies = []

[tool.cloacina]
# The modules that define the @packaged_workflow classes (default: the whole package).
modules = ["{pkg}.workflows"]
# Extra files shipped at the same path, e.g. executables of command tasks:
# include = ["bin/*.sh"]

[tool.pytest.ini_options]
pythonpath = ["src"]
testpaths = ["tests"]
"""

INIT = '''\
"""{name}: workflows packaged for Cloacina."""
'''

WORKFLOWS = '''\
"""The workflows of {name}.

Build the package with `cloacina package build`; every @packaged_workflow below ships in it.
Importing this module also registers the workflows in the current process, which is how
tests run them with a DefaultRunner.
"""

from __future__ import annotations

from cloacina import Context, RetryPolicy, TaskError, packaged_workflow, task


@packaged_workflow(
    name="{workflow}",
    package="{pkg}",
    description="Double some numbers and report their total",
)
class pipeline:
    @task()
    def extract(context: Context) -> None:
        """Read the input numbers (default: 1, 2, 3)."""
        numbers = context.get("numbers", [1, 2, 3])
        context.set("numbers", [int(n) for n in numbers])

    @task(
        dependencies=[extract],
        retry=RetryPolicy(max_attempts=3, backoff="exponential", initial_delay=0.5),
    )
    def transform(context: Context) -> None:
        """Double every number."""
        numbers = context.get("numbers")
        if numbers is None:
            raise TaskError("extract did not store 'numbers'", retryable=False)
        context.insert("doubled", [n * 2 for n in numbers])

    @task(dependencies=[transform], timeout=30)
    def report(context: Context) -> None:
        """Summarise the result."""
        doubled = context["doubled"]
        context.insert("report", {{"count": len(doubled), "total": sum(doubled)}})
'''

TESTS = '''\
"""Tests of the {name} workflows: a whole run on a throw-away SQLite file, and one task."""

from __future__ import annotations

from pathlib import Path

from cloacina import Context, DefaultRunner

from {pkg}.workflows import pipeline


def test_pipeline_runs_end_to_end(tmp_path: Path) -> None:
    with DefaultRunner(f"sqlite:///{{tmp_path / 'test.db'}}") as runner:
        result = runner.execute("{workflow}", {{"numbers": [1, 2, 3, 4]}}, timeout=60)
    assert result.status == "completed", result.error
    assert result.final_context["report"] == {{"count": 4, "total": 20}}
    assert set(result.tasks) == {{"extract", "transform", "report"}}


def test_transform_doubles_numbers() -> None:
    context = Context({{"numbers": [1, 5]}})
    pipeline.transform(context)
    assert context["doubled"] == [2, 10]
'''

README = """\
# {name}

Cloacina workflows, packaged as a `.cloacina` archive.

- `src/{pkg}/workflows.py` defines the workflow `{workflow}` (extract -> transform -> report).
- `tests/test_workflows.py` runs it end to end on a temporary SQLite file and unit-tests a task.

```sh
python -m pytest                                  # run the tests
cloacina package build                            # -> dist/{pkg}-0.1.0.cloacina
cloacina package inspect dist/{pkg}-0.1.0.cloacina   # workflows, tasks, files, hashes
cloacina package verify dist/{pkg}-0.1.0.cloacina    # manifest matches the code
cloacina keys generate --name team                # team.key (secret) + team.pub
cloacina package sign dist/{pkg}-0.1.0.cloacina --key team.key
cloacina package register dist/{pkg}-0.1.0.cloacina --db sqlite:///cloacina.db
```

Add pure-Python dependencies to `[project].dependencies`; the build vendors them into the
package. List the modules that define workflows in `[tool.cloacina] modules`, and extra files
(such as the executables of command tasks) in `[tool.cloacina] include`.
"""

GITIGNORE = """\
dist/
__pycache__/
*.key
"""


@dataclass(frozen=True)
class Scaffold:
    root: Path
    package: str
    workflow: str
    files: tuple[Path, ...]


def scaffold(name: str, directory: Path | None = None) -> Scaffold:
    """Create a workflow project ``name`` in ``directory`` (default ``./name``).

    Refuses to overwrite any file.
    """
    pkg = check_project_name(name)
    root = Path(directory) if directory is not None else Path(name)
    workflow = f"{pkg}_pipeline"
    values = {"name": name, "pkg": pkg, "workflow": workflow}
    files = {
        Path("pyproject.toml"): PYPROJECT,
        Path("README.md"): README,
        Path(".gitignore"): GITIGNORE,
        Path("src") / pkg / "__init__.py": INIT,
        Path("src") / pkg / "workflows.py": WORKFLOWS,
        Path("tests") / "test_workflows.py": TESTS,
    }
    if root.exists() and not root.is_dir():
        raise PackageError(f"{root} exists and is not a directory")
    existing = [str(root / rel) for rel in files if (root / rel).exists()]
    if existing:
        raise PackageError(
            f"{existing[0]} already exists; choose a new directory with --dir "
            "(package new never overwrites files)"
        )
    written = []
    for rel, template in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
        written.append(path)
    return Scaffold(root=root, package=pkg, workflow=workflow, files=tuple(written))


def _shadows(pkg: str) -> str | None:
    """What a top-level package named ``pkg`` would hide, or None."""
    if pkg in _TAKEN:
        return _TAKEN[pkg]
    if pkg in sys.stdlib_module_names:
        return f"the standard library's {pkg} module"
    return None


def suggest_name(name: str) -> str:
    """A valid project name close to ``name`` (for error messages)."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[: MAX_PACKAGE_NAME - 10]
    if not base:
        return "my-flows"
    if not base[0].isalpha():
        base = f"flows-{base}"
    if _shadows(import_name(base)) is not None or not is_identifier(import_name(base)):
        base = f"{base}-flows"
    return base


def check_project_name(name: str) -> str:
    """The import name of project ``name``; a :class:`PackageError` with a suggestion when
    ``name`` is not a valid project name or its package would shadow a module it needs."""
    pkg = import_name(name)
    example = f"for example: cloacina package new {suggest_name(name)}"
    if not _PROJECT_NAME.match(name) or not pkg or not name[0].isalpha():
        raise PackageError(
            f"{name!r} cannot name a Python package: a project name has letters, digits, "
            f"'-', '_' and '.', starts with a letter and ends with a letter or digit; {example}"
        )
    if not is_identifier(pkg):
        raise PackageError(
            f"{name!r} cannot name a Python package: {pkg!r} is a Python keyword; {example}"
        )
    shadowed = _shadows(pkg)
    if shadowed is not None:
        raise PackageError(
            f"{name!r} would make a Python package named {pkg!r}, which would hide "
            f"{shadowed} from the project's code and tests; choose another name, {example}"
        )
    if len(pkg) > MAX_PACKAGE_NAME:
        raise PackageError(
            f"{name!r} is {len(name)} characters long; a package name may have at most "
            f"{MAX_PACKAGE_NAME}; {example}"
        )
    return pkg


__all__ = ["Scaffold", "check_project_name", "scaffold", "suggest_name"]
