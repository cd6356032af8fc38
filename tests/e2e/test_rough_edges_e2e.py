"""Rough edges a hostile new user found (issue 9), through the CLI in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cloacina.model.context import MAX_DEPTH

from .helpers import Cli

pytestmark = pytest.mark.timeout(120)


# ---- 9.22: deeply nested --context-file ---------------------------------------------------------
@pytest.mark.parametrize("levels", [MAX_DEPTH, 100_000])
def test_deeply_nested_context_file_is_a_clear_error(
    cli: Cli, flows: Path, tmp_path: Path, db: str, levels: int
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * levels + "]" * levels + "}", encoding="utf-8")
    res = cli("run", "greeting", "-m", "flows", "--db", db, "--context-file", deep)
    assert res.returncode == 2, res
    assert "Traceback" not in res.output and "RecursionError" not in res.output
    assert "error: --context-file" in res.stderr
    assert f"more than {MAX_DEPTH} levels deep" in res.stderr
    assert not Path(db.removeprefix("sqlite:///")).exists()  # refused before anything ran


# ---- 9.19: package new with a name that shadows a module or is not a project name -----------
@pytest.mark.parametrize(
    ("name", "hides", "suggestion"),
    [
        ("cloacina", "the cloacina library itself", "cloacina-flows"),
        ("json", "the standard library's json module", "json-flows"),
        ("Asyncio", "the standard library's asyncio module", "asyncio-flows"),
        ("sqlalchemy", "sqlalchemy (which cloacina needs)", "sqlalchemy-flows"),
    ],
)
def test_package_new_refuses_a_name_that_shadows_a_module(
    cli: Cli, tmp_path: Path, name: str, hides: str, suggestion: str
) -> None:
    res = cli("package", "new", name)
    assert res.returncode == 2, res
    assert f"which would hide {hides}" in res.stderr
    assert f"cloacina package new {suggestion}" in res.stderr
    assert "Traceback" not in res.output
    assert not (tmp_path / name).exists()  # nothing written


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("bad name!", "bad-name"),
        ("flows-", "flows"),
        ("1-not-a-name", "flows-1-not-a-name"),
        ("two..dots ok?", "two-dots-ok"),
    ],
)
def test_package_new_refuses_an_invalid_project_name_and_suggests_one(
    cli: Cli, tmp_path: Path, name: str, suggestion: str
) -> None:
    res = cli("package", "new", name)
    assert res.returncode == 2, res
    assert f"{name!r} cannot name a Python package" in res.stderr
    assert f"for example: cloacina package new {suggestion}" in res.stderr
    assert not (tmp_path / name).exists()
    # the suggestion itself is accepted
    made = cli("package", "new", suggestion)
    assert made.returncode == 0, made
    assert f'name = "{suggestion}"' in (tmp_path / suggestion / "pyproject.toml").read_text()


# ---- 9.21: what tasks write is printed escaped ------------------------------------------------
EVIL_FLOWS = r"""
from cloacina import Context, task, workflow


@workflow(name="evil")
class evil:
    @task()
    def boom(context: Context) -> None:
        raise ValueError("bad \x1b[31mRED\x1b[0m [red]x[/red] \x9b2J \u202eevil\rover end")

    @task(dependencies=["boom"], trigger_rule="one_failed")
    def after(context: Context) -> None:
        context.insert("k\x1b[2J", "v\x1b]0;title\x07 [bold]b[/bold] \x9b31m \u202eabc")
"""


def _assert_escaped(text: str, what: str) -> None:
    for raw in ("\x1b", "\x9b", "\u202e", "\x07", "\r"):
        assert raw not in text, f"{what}: raw {raw!r} printed"


def test_task_text_is_printed_escaped(cli: Cli, tmp_path: Path, db: str) -> None:
    (tmp_path / "evil_flows.py").write_text(EVIL_FLOWS, encoding="utf-8")
    run = cli("run", "evil", "-m", "evil_flows", "--db", db)
    assert run.returncode == 1, run
    _assert_escaped(run.output, "run")
    assert "\\x1b[31mRED\\x1b[0m" in run.stdout, run
    assert "\\x9b2J" in run.stdout and "\\u202eevil\\rover" in run.stdout, run
    assert "[red]x[/red]" in run.stdout  # markup printed as it is, not interpreted
    assert "Traceback of failed task 'boom'" in run.stdout

    listed = cli("executions", "list", "--db", db, "--json")
    [row] = json.loads(listed.stdout)
    show = cli("executions", "show", row["execution_id"], "--events", "--context", "--db", db)
    assert show.returncode == 0, show
    _assert_escaped(show.output, "show")
    assert "\\x1b[31mRED" in show.stdout and "[red]x[/red]" in show.stdout
    assert "[bold]b[/bold]" in show.stdout  # a context value
    assert "\\u001b[2J" in show.stdout  # a context key, JSON-escaped

    watch = cli("executions", "watch", row["execution_id"], "--db", db)
    _assert_escaped(watch.output, "watch")
    assert "\\x1b[31mRED" in watch.stdout

    as_json = cli("executions", "show", row["execution_id"], "--json", "--db", db)
    _assert_escaped(as_json.output, "show --json")
    data = json.loads(as_json.stdout)
    assert data["tasks"]["boom"]["error"].startswith("ValueError: bad \x1b[31mRED")  # lossless


# ---- 9.25: the README's first example works with --module -------------------------------------
def readme_first_example() -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A workflow in your own code", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_first_example_runs_with_module_without_a_run_at_import(
    cli: Cli, tmp_path: Path, db: str
) -> None:
    (tmp_path / "my_workflows.py").write_text(readme_first_example(), encoding="utf-8")
    res = cli("run", "data_processing", "--module", "my_workflows", "--db", db, "--json")
    assert res.returncode == 0, res
    assert json.loads(res.stdout)["final_context"]["report"] == {"total": 950}
    # importing the module started no run of its own (it would use ./cloacina.db)
    assert not (tmp_path / "cloacina.db").exists(), res

    direct = subprocess.run(
        [sys.executable, "my_workflows.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout.splitlines()[:2] == ["completed", "{'total': 950}"]
