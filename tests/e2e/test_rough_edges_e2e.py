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
