"""Which workflow a name means, through the CLI in subprocesses (issue 9, items 7, 8, 18 and
27): real projects built with ``cloacina package build``, registered, listed, promoted,
unregistered and run by ``package::workflow@version`` names on a SQLite file."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .helpers import Cli, Result

pytestmark = pytest.mark.timeout(240)

FLOW = """
from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="etl", package="{package}")
class etl:
    @task(id="mark")
    def mark(context: Context) -> None:
        context.insert("ran", "{label}")
"""

MODULE = """
from cloacina import Context, task, workflow


@workflow(name="etl")
class etl:
    @task(id="from_module")
    def from_module(context: Context) -> None:
        context.insert("ran", "module")
"""


def build(cli: Cli, root: Path, package: str, version: str) -> str:
    """Build a project ``package`` ``version`` whose workflow ``etl`` records who ran; the
    package file's path."""
    project = root / f"{package}-{version}"
    (project / package).mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "{package}"
            version = "{version}"
            dependencies = []
            """
        )
    )
    (project / package / "__init__.py").write_text("")
    (project / package / "flows.py").write_text(
        FLOW.format(package=package, label=f"{package}-{version}")
    )
    built = cli("package", "build", project, "-q", timeout=120)
    assert built.returncode == 0, built
    return built.stdout.strip()


def ok(res: Result) -> Result:
    assert res.returncode == 0, res
    return res


def ran(cli: Cli, db: str, *args: str) -> str:
    """Who ran: the ``ran`` of a run of ``args`` (the workflow name and options)."""
    res = ok(cli("run", *args, "--db", db, "--json", timeout=60))
    data: dict[str, Any] = json.loads(res.stdout)
    assert data["status"] == "completed", res
    return str(data["final_context"]["ran"])


def test_register_collisions_versions_promote_list_unregister(
    cli: Cli, tmp_path: Path, db: str
) -> None:
    alpha_new = build(cli, tmp_path, "alpha", "0.10.0")
    alpha_old = build(cli, tmp_path, "alpha", "0.9.0")
    beta = build(cli, tmp_path, "beta", "1.0")

    assert ok(cli("package", "list", "--db", db, "--json")).stdout.strip() == "[]"
    ok(cli("package", "register", alpha_new, "--db", db, timeout=60))
    late = ok(cli("package", "register", alpha_old, "--db", db, timeout=60))
    # Registered last, but lower: not the default, and the note says how to run it.
    assert "new runs of 'etl' take alpha 0.10.0 (the highest version)" in late.stderr, late
    assert "alpha::etl@0.9.0" in late.stderr and "package promote alpha 0.9.0" in late.stderr

    # 9.18: the highest version is the default (before: 0.9.0, the last registered).
    assert ran(cli, db, "etl") == "alpha-0.10.0"
    assert ran(cli, db, "etl@0.9.0") == "alpha-0.9.0"
    assert ran(cli, db, "etl", "--version", "0.9.0") == "alpha-0.9.0"
    both = cli("run", "etl@0.9.0", "--version", "0.10.0", "--db", db)
    assert both.returncode == 2 and "give one" in both.stderr, both
    missing = cli("run", "etl@3.0", "--db", db)
    assert missing.returncode == 2, missing
    assert "no registered version 3.0 has workflow 'etl' (alpha has 0.9.0, 0.10.0)" in (
        missing.stderr
    )

    # 9.7: another package cannot silently take the name over.
    refused = cli("package", "register", beta, "--db", db, timeout=60)
    assert refused.returncode == 1, refused
    for part in ("beta 1.0", "'etl'", "package alpha already provides", "--replace", "alpha::etl"):
        assert part in refused.stderr, refused
    assert ran(cli, db, "etl") == "alpha-0.10.0"

    # 9.27: package list, as JSON and as a table.
    listed = json.loads(ok(cli("package", "list", "--db", db, "--json")).stdout)
    assert [(p["package"], p["version"], p["default"], p["promoted"]) for p in listed] == [
        ("alpha", "0.9.0", False, False),
        ("alpha", "0.10.0", True, False),
    ]
    assert listed[0]["workflows"][0]["name"] == "etl" and listed[0]["id"]

    # Asked for: beta's etl is the default, alpha's is reachable by its package.
    ok(cli("package", "register", beta, "--db", db, "--replace", timeout=60))
    assert ran(cli, db, "etl") == "beta-1.0"
    assert ran(cli, db, "alpha::etl") == "alpha-0.10.0"

    # A promotion pins alpha's default, whatever is higher.
    promoted = json.loads(
        ok(cli("package", "promote", "alpha", "0.9.0", "--db", db, "--json")).stdout
    )
    assert (promoted["version"], promoted["default"], promoted["promoted"]) == (
        "0.9.0",
        True,
        True,
    )
    assert ran(cli, db, "alpha::etl") == "alpha-0.9.0"
    table = ok(cli("package", "list", "--db", db)).stdout
    assert "promoted" in table and "beta" in table and "0.10.0" in table
    graph = ok(cli("workflows", "graph", "alpha::etl@0.10.0", "--db", db))
    assert "mark" in graph.stdout
    assert cli("package", "promote", "alpha", "--db", db).returncode == 2
    unknown = cli("package", "promote", "alpha", "5.0", "--db", db)
    assert unknown.returncode == 2 and "has no version 5.0" in unknown.stderr, unknown

    # Unregistering: the name goes back to alpha, at its promoted version.
    gone = json.loads(ok(cli("package", "unregister", "beta", "1.0", "--db", db, "--json")).stdout)
    assert (gone["package"], gone["version"], gone["default"]) == ("beta", "1.0", None)
    assert ran(cli, db, "etl") == "alpha-0.9.0"
    text = ok(cli("package", "unregister", "alpha", "0.9.0", "--db", db)).stdout
    assert "Unregistered" in text and "alpha 0.10.0 is the default for new runs" in text
    assert ran(cli, db, "etl") == "alpha-0.10.0"
    again = cli("package", "unregister", "alpha", "0.9.0", "--db", db)
    assert again.returncode == 2 and "no package alpha 0.9.0 is registered" in again.stderr
    assert "cloacina package list" in again.stderr
    nowhere = cli("package", "unregister", "alpha", "1.0", "--db", f"sqlite:///{tmp_path}/no.db")
    assert nowhere.returncode == 2 and "no database" in nowhere.stderr, nowhere
    assert not (tmp_path / "no.db").exists()


def test_an_explicit_module_wins_over_a_registered_package(
    cli: Cli, tmp_path: Path, db: str
) -> None:
    """9.8: before, `run etl --module flows.py` ran the registered package's etl."""
    ok(cli("package", "register", build(cli, tmp_path, "alpha", "1.0"), "--db", db, timeout=60))
    (tmp_path / "flows.py").write_text(MODULE)

    res = ok(cli("run", "etl", "--module", "flows.py", "--db", db, "--json", timeout=60))
    assert json.loads(res.stdout)["final_context"]["ran"] == "module"
    assert "note: running workflow 'etl' from module flows" in res.stderr, res
    assert "alpha::etl" in res.stderr
    # Naming the package (or a version) runs the package's, module or not.
    assert ran(cli, db, "alpha::etl", "--module", "flows.py") == "alpha-1.0"
    assert ran(cli, db, "etl@1.0", "--module", "flows.py") == "alpha-1.0"
    # Without --module, the registered one.
    assert ran(cli, db, "etl") == "alpha-1.0"
    # The graph follows the same rule.
    graph = ok(cli("workflows", "graph", "etl", "--module", "flows.py", "--db", db)).stdout
    assert "from_module" in graph and "mark" not in graph
    assert "mark" in ok(cli("workflows", "graph", "alpha::etl", "--db", db)).stdout
