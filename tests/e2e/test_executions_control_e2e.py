"""``cloacina executions cancel|pause|resume`` and what ``executions watch`` says about a run
that cannot move (issue 9, items 16 and 26)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .helpers import Cli

pytestmark = pytest.mark.timeout(120)

HELD = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from cloacina import Context, task, workflow


    @workflow(name="held")
    class held:
        @task()
        def hold(context: Context) -> None:
            Path(os.environ["STARTED_MARKER"]).write_text("started")
            time.sleep(120)
    """
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLOACINA_DB"}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8", **extra})
    return env


def _schedule_without_worker(cwd: Path, db: str, workflow: str, module: str) -> str:
    """Start a run from a submit-only client: it is running, and no worker is alive."""
    code = (
        "import sys; from cloacina import DefaultRunner; "
        f"import {module}; r = DefaultRunner(sys.argv[1], execute_tasks=False); "
        f"print(r.schedule_workflow({workflow!r})); r.shutdown()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, db],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.strip()


def _status(cli: Cli, db: str, eid: str) -> dict[str, object]:
    res = cli("executions", "show", eid, "--db", db, "--json")
    assert res.returncode == 0, res
    data = json.loads(res.stdout)
    assert isinstance(data, dict)
    return data


@contextmanager
def _watching(cwd: Path, db: str, eid: str) -> Iterator[Path]:
    """``executions watch`` running in the background (not on a terminal), its output in
    the file yielded."""
    out = cwd / f"watch-{time.monotonic_ns()}.txt"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloacina", "executions", "watch", eid, "--db", db],
            cwd=cwd,
            env=_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            yield out
        finally:
            proc.terminate()
            proc.wait(30)


def _wait_for(path: Path, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        seen = path.read_text()
        if text in seen:
            return seen
        assert time.monotonic() < deadline, f"never printed {text!r}:\n{seen}"
        time.sleep(0.1)


def test_pause_resume_cancel_by_short_id(cli: Cli, flows: Path, tmp_path: Path, db: str) -> None:
    eid = _schedule_without_worker(tmp_path, db, "greeting", "flows")
    short = eid[:8]

    res = cli("executions", "pause", short, "--db", db)
    assert res.returncode == 0, res
    assert f"Paused workflow execution {eid} (greeting)" in res.stdout
    assert f"cloacina executions resume {short}" in res.stdout
    assert _status(cli, db, eid)["status"] == "paused"

    again = cli("executions", "pause", short, "--db", db)
    assert again.returncode == 1, again
    assert "it is paused (must be running)" in again.stderr

    res = cli("executions", "resume", short, "--db", db)
    assert res.returncode == 0, res
    assert "Resumed workflow execution" in res.stdout
    assert _status(cli, db, eid)["status"] == "running"
    again = cli("executions", "resume", short, "--db", db)
    assert again.returncode == 1 and "must be paused" in again.stderr, again

    res = cli("executions", "cancel", short, "--db", db, "--reason", "no worker for it")
    assert res.returncode == 0, res
    assert f"Cancelled workflow execution {eid} (greeting)" in res.stdout
    data = _status(cli, db, eid)
    assert data["status"] == "cancelled" and data["error"] == "no worker for it"

    again = cli("executions", "cancel", eid, "--db", db)
    assert again.returncode == 1, again
    assert "already cancelled; nothing to cancel" in again.stderr
    assert "Traceback" not in again.output


def test_control_of_an_unknown_run_or_database(
    cli: Cli, flows: Path, tmp_path: Path, db: str
) -> None:
    _schedule_without_worker(tmp_path, db, "greeting", "flows")
    for action in ("cancel", "pause", "resume"):
        res = cli("executions", action, "nosuchid", "--db", db)
        assert res.returncode == 2, res
        assert "no workflow execution with id or id prefix 'nosuchid'" in res.stderr
    res = cli("executions", "cancel", "abc", "--db", f"sqlite:///{tmp_path / 'missing.db'}")
    assert res.returncode == 2 and "no database at" in res.stderr, res
    assert not (tmp_path / "missing.db").exists()


def test_watch_says_a_run_is_paused_and_that_no_worker_is_alive(
    cli: Cli, flows: Path, tmp_path: Path, db: str
) -> None:
    eid = _schedule_without_worker(tmp_path, db, "greeting", "flows")
    with _watching(tmp_path, db, eid) as out:
        seen = _wait_for(out, "note: no live worker is running")
        assert "the ready tasks of this run wait for one" in seen
        assert f"start one with: cloacina worker --db {db}" in seen
        assert cli("executions", "pause", eid, "--db", db).returncode == 0
        seen = _wait_for(out, "note: this run is paused")
        assert f"cloacina executions resume {eid[:8]}" in seen
        time.sleep(1.5)  # said once, not at every poll
        seen = out.read_text()
        assert seen.count("note: this run is paused") == 1, seen
        assert seen.count("note: no live worker is running") == 1, seen
        assert cli("executions", "cancel", eid, "--db", db).returncode == 0
        _wait_for(out, f"execution {eid} cancelled")


def test_watch_says_that_the_worker_holding_a_task_died(cli: Cli, tmp_path: Path, db: str) -> None:
    (tmp_path / "held.py").write_text(HELD, encoding="utf-8")
    marker = tmp_path / "started"
    runner = subprocess.Popen(
        [sys.executable, "-m", "cloacina", "run", "held", "-m", "held", "--db", db, "--json"],
        cwd=tmp_path,
        env=_env(STARTED_MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert runner.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        runner.send_signal(signal.SIGKILL)  # the only worker dies, the run stays running
        runner.communicate(timeout=30)
    listed = json.loads(cli("executions", "list", "--db", db, "--json").stdout)
    assert [r["status"] for r in listed] == ["running"]
    eid = listed[0]["execution_id"]

    with _watching(tmp_path, db, eid) as out:
        # The worker is judged dead 10 s after its last heartbeat.
        seen = _wait_for(out, "note: no live worker holds running task 'hold'", timeout=40)
        assert "it probably died" in seen and "no live worker is running to take it back" in seen
        assert cli("executions", "cancel", eid[:8], "--db", db).returncode == 0
        seen = _wait_for(out, f"execution {eid} cancelled")
        assert seen.count("note:") == 1, seen
