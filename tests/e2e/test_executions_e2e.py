"""``cloacina executions`` and ``cloacina db`` end to end, on databases made by ``run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import FLOWS, run_cli


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, str]:
    """A database holding one completed and one failed run: (cwd, db, ok_id, failed_id)."""
    cwd = tmp_path_factory.mktemp("history")
    (cwd / "flows.py").write_text(FLOWS, encoding="utf-8")
    db = f"sqlite:///{cwd / 'history.db'}"
    ok = run_cli("run", "greeting", "-m", "flows", "--db", db, "--json", cwd=cwd)
    assert ok.returncode == 0, ok
    failed = run_cli("run", "broken", "-m", "flows", "--db", db, "--json", cwd=cwd)
    assert failed.returncode == 1, failed
    ok_id = json.loads(ok.stdout)["execution_id"]
    failed_id = json.loads(failed.stdout)["execution_id"]
    return cwd, db, ok_id, failed_id


def test_list_shows_runs(history: tuple[Path, str, str, str]) -> None:
    cwd, db, ok_id, failed_id = history
    res = run_cli("executions", "list", "--db", db, cwd=cwd)
    assert res.returncode == 0, res
    lines = res.stdout.splitlines()
    ok_line = next(line for line in lines if ok_id[:8] in line)
    failed_line = next(line for line in lines if failed_id[:8] in line)
    assert "greeting" in ok_line and "completed" in ok_line
    assert "broken" in failed_line and "failed" in failed_line
    assert lines.index(failed_line) < lines.index(ok_line)  # newest first


def test_list_filters_and_json(history: tuple[Path, str, str, str]) -> None:
    cwd, db, ok_id, failed_id = history
    res = run_cli("executions", "list", "--db", db, "--status", "failed", "--json", cwd=cwd)
    assert res.returncode == 0, res
    rows = json.loads(res.stdout)
    assert [r["execution_id"] for r in rows] == [failed_id]
    assert rows[0]["workflow"] == "broken"

    res = run_cli("executions", "list", "--db", db, "--workflow", "greeting", "--json", cwd=cwd)
    assert [r["execution_id"] for r in json.loads(res.stdout)] == [ok_id]

    res = run_cli("executions", "list", "--db", db, "--status", "bogus", cwd=cwd)
    assert res.returncode == 2, res


def test_show_by_id_and_prefix(history: tuple[Path, str, str, str]) -> None:
    cwd, db, _ok_id, failed_id = history
    for ident in (failed_id, failed_id[:8]):
        res = run_cli("executions", "show", ident, "--db", db, cwd=cwd)
        assert res.returncode == 0, res
        out = res.stdout
        assert failed_id in out
        assert "broken" in out
        assert "task 'transform' failed: ValueError: transform exploded" in out
        for task_id, status in (
            ("extract", "completed"),
            ("transform", "failed"),
            ("load", "skipped"),
        ):
            line = next(ln for ln in out.splitlines() if ln.split()[:1] == [task_id])
            assert status in line, line
        assert "1 of 1 dependencies failed" in out


def test_show_events_and_json(history: tuple[Path, str, str, str]) -> None:
    cwd, db, ok_id, _failed_id = history
    res = run_cli("executions", "show", ok_id[:8], "--db", db, "--events", cwd=cwd)
    assert res.returncode == 0, res
    for event in ("execution_started", "task_started", "task_completed", "execution_completed"):
        assert event in res.stdout

    res = run_cli("executions", "show", ok_id, "--db", db, "--events", "--json", cwd=cwd)
    data = json.loads(res.stdout)
    assert data["status"] == "completed"
    assert set(data["tasks"]) == {"greet", "shout"}
    assert data["final_context"]["shout"] == "HELLO WORLD"
    assert data["events"][0]["event"] == "execution_started"


def test_show_unknown_id_exits_2(history: tuple[Path, str, str, str]) -> None:
    cwd, db, _ok_id, _failed_id = history
    res = run_cli("executions", "show", "does-not-exist", "--db", db, cwd=cwd)
    assert res.returncode == 2, res
    assert "error: no workflow execution with id or id prefix 'does-not-exist'" in res.stderr
    assert "Traceback" not in res.stderr


def test_read_commands_do_not_create_a_database(tmp_path: Path) -> None:
    res = run_cli("executions", "list", "--db", "missing.db", cwd=tmp_path)
    assert res.returncode == 2, res
    assert "no database at" in res.stderr
    assert not (tmp_path / "missing.db").exists()


def test_db_upgrade_on_a_new_file(tmp_path: Path) -> None:
    from cloacina.store.migrate import head_revision

    head = head_revision()
    res = run_cli("db", "upgrade", "--db", "sqlite:///fresh.db", cwd=tmp_path)
    assert res.returncode == 0, res
    assert (tmp_path / "fresh.db").exists()
    assert f"created fresh.db at schema revision {head}" in res.stdout

    res = run_cli("db", "upgrade", "--db", "fresh.db", cwd=tmp_path)
    assert res.returncode == 0, res
    assert f"up to date at schema revision {head}" in res.stdout

    res = run_cli("db", "current", "--db", "fresh.db", cwd=tmp_path)
    assert res.returncode == 0, res
    assert res.stdout.strip() == f"{head} (head)"

    res = run_cli("executions", "list", "--db", "fresh.db", cwd=tmp_path)
    assert res.returncode == 0, res
    assert "No workflow executions" in res.stdout


def test_db_upgrade_rejects_a_non_database(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_text("not a database at all" * 100)
    res = run_cli("db", "upgrade", "--db", "junk.db", cwd=tmp_path)
    assert res.returncode == 2, res
    assert res.stderr.startswith("error: ")
    assert "Traceback" not in res.stderr
