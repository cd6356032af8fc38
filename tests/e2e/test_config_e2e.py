"""``cloacina config show``: the effective settings and where each came from, with a
``CLOACINA_*`` variable and an option (issue 8.8)."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import Cli, run_cli


def test_config_show_json_names_each_source(tmp_path: Path) -> None:
    env = {"CLOACINA_MAX_CONCURRENT_TASKS": "4", "CLOACINA_POLL_INTERVAL": "2s"}
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    res = run_cli(
        "config", "show", "--db", db, "--poll-interval", "200ms", "--json", cwd=tmp_path, env=env
    )
    assert res.returncode == 0, res
    shown = json.loads(res.stdout)
    assert shown["database"] == {"value": db, "source": "option --db", "backend": "SQLite"}
    assert shown["tenant"] == {"value": "public", "source": "default"}
    settings = shown["settings"]
    assert settings["max_concurrent_tasks"]["value"] == 4
    assert settings["max_concurrent_tasks"]["source"] == "env CLOACINA_MAX_CONCURRENT_TASKS"
    assert settings["poll_interval"]["value"] == 0.2  # the option wins over the variable
    assert settings["poll_interval"]["source"] == "option --poll-interval"
    assert settings["heartbeat_interval"] == {
        "value": 1.0,
        "display": "1s",
        "unit": "seconds",
        "source": "default",
        "env": "CLOACINA_HEARTBEAT_INTERVAL",
        "option": "--heartbeat-interval",
        "used": True,
        "help": settings["heartbeat_interval"]["help"],
    }
    assert settings["pool_size"]["used"] is False  # PostgreSQL only
    assert not (tmp_path / "runs.db").exists()  # showing settings opens no database


def test_config_show_table(tmp_path: Path) -> None:
    res = run_cli(
        "config",
        "show",
        "--max-overflow",
        "3",
        cwd=tmp_path,
        env={"CLOACINA_DB": "postgresql://me:secret@db.example/prod", "CLOACINA_RETENTION": "30d"},
    )
    assert res.returncode == 0, res
    rows = [line.split(maxsplit=2) for line in res.stdout.splitlines()[3:]]
    lines = {row[0]: [row[1], row[2].strip()] for row in rows if len(row) == 3}
    assert lines["database"] == ["postgresql://me:***@db.example/prod", "env CLOACINA_DB"]
    assert lines["retention"] == ["30d", "env CLOACINA_RETENTION"]
    assert lines["max_overflow"] == ["3", "option --max-overflow"]
    assert lines["poll_interval"] == ["0.5s", "default"]
    assert lines["busy_timeout"] == ["30s", "default (unused on PostgreSQL)"]
    assert "secret" not in res.stdout


def test_config_show_refuses_what_a_worker_would(tmp_path: Path) -> None:
    res = run_cli("config", "show", cwd=tmp_path, env={"CLOACINA_POLL_INTERVAL": "0"})
    assert res.returncode == 2, res
    assert "poll_interval='0' (from env CLOACINA_POLL_INTERVAL)" in res.stderr
    assert "longer than 0s" in res.stderr and "Traceback" not in res.stderr


def test_run_shares_the_worker_settings_options(cli: Cli, flows: Path, db: str) -> None:
    for command in ("run", "worker", "config show"):
        res = cli(*command.split(), "--help")
        assert res.returncode == 0, res
        for flag in ("--max-concurrent-tasks", "--poll-interval", "--shutdown-grace"):
            assert flag in res.stdout, (command, flag)
    res = cli("run", "greeting", "-m", "flows", "--db", db, "--poll-interval", "0")
    assert res.returncode == 2, res
    assert "poll_interval='0' (from option --poll-interval)" in res.stderr
    res = cli(
        "run",
        "greeting",
        "-m",
        "flows",
        "--db",
        db,
        "--json",
        "--max-concurrent-tasks",
        "2",
        env={"CLOACINA_POLL_INTERVAL": "100ms"},
    )
    assert res.returncode == 0, res
    assert json.loads(res.stdout)["status"] == "completed"
