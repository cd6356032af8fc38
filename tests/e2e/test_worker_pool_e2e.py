"""``cloacina worker`` connection-pool options: listed in ``--help`` with their defaults,
checked, and passed to the worker's PostgreSQL store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .helpers import run_cli
from .test_worker_cli_e2e import MODULE, WORKER_FLOWS, Worker, client, load_module

pytestmark = pytest.mark.timeout(90)


def option_help(help_text: str) -> dict[str, str]:
    """Each option of a click ``--help`` page with its (unwrapped) help text."""
    entries: dict[str, str] = {}
    current = ""
    for line in help_text.splitlines():
        match = re.match(r"^  (?:-\w, )?(--[\w-]+)(.*)$", line)
        if match:
            current = match.group(1)
            entries[current] = match.group(2)
        elif current and line.startswith("   "):
            entries[current] += " " + line
    return {option: " ".join(text.split()) for option, text in entries.items()}


def test_worker_help_lists_pool_options(tmp_path: Path) -> None:
    res = run_cli("worker", "--help", cwd=tmp_path)
    assert res.returncode == 0, res
    options = option_help(res.stdout)
    for option, default in (
        ("--pool-size", "[default: 10]"),
        ("--max-overflow", "[default: 20]"),
        ("--pool-timeout", "[default: 30s]"),
    ):
        assert option in options, res
        assert "PostgreSQL" in options[option] and default in options[option], (option, res)


def test_worker_pool_option_usage_errors(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    for args, message in (
        (("--pool-size", "0"), "--pool-size"),
        (("--max-overflow", "-1"), "--max-overflow"),
        (("--pool-timeout", "0"), "--pool-timeout"),
        (("--pool-timeout", "soon"), "invalid duration 'soon'"),
    ):
        res = run_cli("worker", "--db", db, *args, cwd=tmp_path)
        assert res.returncode == 2 and message in res.stderr, res


def test_worker_with_small_pool_runs_workflows(postgres_url: str, tmp_path: Path) -> None:
    (tmp_path / f"{MODULE}.py").write_text(WORKER_FLOWS, encoding="utf-8")
    load_module(tmp_path / f"{MODULE}.py")
    worker = Worker(
        postgres_url,
        tmp_path,
        "--pool-size",
        "2",
        "--max-overflow",
        "1",
        "--pool-timeout",
        "10s",
    )
    try:
        worker.wait_started()
        with client(postgres_url) as runner:
            ids = [runner.schedule_workflow("worker_e2e_pids", {"n": n}) for n in range(4)]
            for execution_id in ids:
                result = runner.wait(execution_id, timeout=30)
                assert result.status == "completed", f"{result}\n{worker.logs()}"
                assert result.final_context["first_pid"] == worker.pid
                assert result.final_context["second_pid"] == worker.pid
        assert worker.terminate() == 0, worker.logs()
    finally:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


def test_worker_passes_pool_options_to_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    import cloacina.cli.worker
    import cloacina.worker
    from cloacina.cli import cli

    seen: dict[str, Any] = {}

    def fake_serve(url: str, **settings: Any) -> int:
        seen.update(settings, url=url)
        return 0

    monkeypatch.setattr(cloacina.worker, "serve", fake_serve)
    # Leave this process's logging alone.
    monkeypatch.setattr(cloacina.cli.worker, "setup_logging", lambda level: None)
    monkeypatch.delenv("CLOACINA_DB", raising=False)
    monkeypatch.delenv("CLOACINA_TENANT", raising=False)
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    args = ["worker", "--db", db, "--pool-size", "2", "--max-overflow", "1"]
    res = CliRunner().invoke(cli, [*args, "--pool-timeout", "1500ms"])
    assert res.exit_code == 0, res.output
    assert seen["url"] == db
    settings = seen["settings"]  # one checked Settings object, with where each value came from
    assert (settings.pool_size, settings.max_overflow, settings.pool_timeout) == (2, 1, 1.5)
    assert settings.sources["pool_size"] == "option --pool-size"

    seen.clear()
    res = CliRunner().invoke(cli, ["worker", "--db", db])
    assert res.exit_code == 0, res.output
    settings = seen["settings"]
    assert (settings.pool_size, settings.max_overflow, settings.pool_timeout) == (10, 20, 30.0)
    assert {settings.sources[name] for name in ("pool_size", "max_overflow")} == {"default"}
