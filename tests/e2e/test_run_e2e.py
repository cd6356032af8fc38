"""``cloacina run`` end to end: a real subprocess, a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import Cli


def test_run_completed_prints_tasks_and_final_context(cli: Cli, flows: Path, db: str) -> None:
    res = cli("run", "greeting", "--module", "flows", "--db", db, "--context", '{"name": "bob"}')
    assert res.returncode == 0, res
    out = res.stdout
    assert "greeting" in out
    assert "completed" in out
    for task_id in ("greet", "shout"):
        assert task_id in out
    assert '"greeting": "hello bob"' in out
    assert '"shout": "HELLO BOB"' in out
    assert Path(db.removeprefix("sqlite:///")).exists()


def test_run_json_output(cli: Cli, flows: Path, db: str) -> None:
    res = cli("run", "greeting", "-m", "flows", "--db", db, "--json")
    assert res.returncode == 0, res
    data = json.loads(res.stdout)
    assert data["status"] == "completed"
    assert data["workflow"] == "greeting"
    assert list(data["tasks"]) == ["greet", "shout"]
    assert data["tasks"]["greet"]["attempts"] == 1
    assert data["final_context"] == {"greeting": "hello world", "shout": "HELLO WORLD"}


def test_run_module_given_as_file_path(cli: Cli, flows: Path, tmp_path: Path, db: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = cli("run", "greeting", "--module", str(flows), "--db", db, cwd=elsewhere)
    assert res.returncode == 0, res
    assert "HELLO WORLD" in res.stdout


def test_run_context_file(cli: Cli, flows: Path, tmp_path: Path, db: str) -> None:
    (tmp_path / "ctx.json").write_text('{"name": "file"}', encoding="utf-8")
    res = cli("run", "greeting", "-m", "flows", "--db", db, "--context-file", "ctx.json")
    assert res.returncode == 0, res
    assert "hello file" in res.stdout


def test_run_failed_workflow_exits_1(cli: Cli, flows: Path, db: str) -> None:
    res = cli("run", "broken", "--module", "flows", "--db", db)
    assert res.returncode == 1, res
    out = res.stdout
    assert "failed" in out
    assert "ValueError: transform exploded" in out
    assert "2/2" in out  # transform used both attempts
    assert "skipped" in out and "dependencies failed" in out  # load was skipped
    assert "flows.py" in out  # the traceback tail points at the user's code
    assert "Traceback" not in res.stderr


def test_run_unknown_workflow_exits_2(cli: Cli, flows: Path, db: str) -> None:
    res = cli("run", "greetin", "--module", "flows", "--db", db)
    assert res.returncode == 2, res
    assert "error: unknown workflow 'greetin'" in res.stderr
    assert "broken, greeting, sleepy" in res.stderr
    assert "Did you mean 'greeting'?" in res.stderr
    assert "Traceback" not in res.stderr
    assert not Path(db.removeprefix("sqlite:///")).exists()  # nothing ran


def test_run_bad_context_json_exits_2(cli: Cli, flows: Path, db: str) -> None:
    res = cli("run", "greeting", "-m", "flows", "--db", db, "--context", '{"name": ')
    assert res.returncode == 2, res
    assert "error: --context is not valid JSON" in res.stderr
    assert "line 1 column" in res.stderr
    assert "Traceback" not in res.stderr

    res = cli("run", "greeting", "-m", "flows", "--db", db, "--context", "[1, 2]")
    assert res.returncode == 2, res
    assert "must be a JSON object" in res.stderr


def test_run_module_import_errors_exit_2(cli: Cli, tmp_path: Path, db: str) -> None:
    res = cli("run", "greeting", "--module", "no_such_module", "--db", db)
    assert res.returncode == 2, res
    assert "no module named 'no_such_module'" in res.stderr

    (tmp_path / "exploding.py").write_text("import os\n\nraise RuntimeError('kaboom')\n")
    res = cli("run", "greeting", "--module", "exploding", "--db", db)
    assert res.returncode == 2, res
    assert "cannot import module 'exploding': RuntimeError: kaboom" in res.stderr
    assert 'exploding.py", line 3' in res.stderr  # the traceback tail
    assert "run.py" not in res.stderr  # ...without the CLI's own frames


def test_run_timeout_cancels_and_exits_1(cli: Cli, flows: Path, db: str) -> None:
    res = cli("run", "sleepy", "-m", "flows", "--db", db, "--timeout", "0.3")
    assert res.returncode == 1, res
    assert "cancelled" in res.stdout
    assert "did not finish within 0.3s" in res.stderr


def test_global_db_option_and_env_var(cli: Cli, flows: Path, tmp_path: Path) -> None:
    res = cli("--db", "global.db", "run", "greeting", "-m", "flows")
    assert res.returncode == 0, res
    assert (tmp_path / "global.db").exists()

    res = cli("run", "greeting", "-m", "flows", env={"CLOACINA_DB": "sqlite:///env.db"})
    assert res.returncode == 0, res
    assert (tmp_path / "env.db").exists()
    assert not (tmp_path / "cloacina.db").exists()


def test_version(cli: Cli) -> None:
    from cloacina import __version__

    res = cli("--version")
    assert res.returncode == 0, res
    assert __version__ in res.stdout
