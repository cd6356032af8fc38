"""Rough edges a hostile new user found (issue 9), through the CLI in a subprocess."""

from __future__ import annotations

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
