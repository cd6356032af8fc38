"""``cloacina workers list`` counts the tasks a worker holds now, from the task rows: a worker
killed with SIGKILL while it ran a task shows none once another worker took the task back,
not the count it last reported before it died (issue 9.24)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import run_cli

pytestmark = pytest.mark.timeout(180)

HELD = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from cloacina import Context, task, workflow

    GATE = Path(__file__).with_name("go")


    @workflow(name="held_task")
    class held_task:
        @task()
        def hold(context: Context) -> None:
            # Each attempt says which worker runs it, then waits for the test.
            Path(__file__).with_name(f"attempt-{os.getpid()}").touch()
            deadline = time.monotonic() + 90
            while not GATE.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never opened the gate")
                time.sleep(0.02)
    """
)
#: Short intervals: a killed worker's claim is stale after 3 s.
FAST = ("--poll-interval", "0.1", "--heartbeat-interval", "0.2", "--stale-claim-threshold", "3")
STARTED = re.compile(r"cloacina worker (\S+) started")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CLOACINA_DB", "CLOACINA_TENANT")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    return env


class Worker:
    """A ``cloacina worker`` subprocess, its output in files in ``cwd``."""

    def __init__(self, url: str, cwd: Path, name: str) -> None:
        self.out = cwd / f"{name}.out"
        self.err = cwd / f"{name}.err"
        argv = [sys.executable, "-m", "cloacina", "worker", "--db", url, "-m", "heldflows"]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [*argv, *FAST, "--grace", "0.5"], cwd=cwd, env=_env(), stdout=out, stderr=err
            )
        self.id = self._wait_started()

    def logs(self) -> str:
        return f"{self.out.read_text(errors='replace')}\n{self.err.read_text(errors='replace')}"

    def _wait_started(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = STARTED.search(self.out.read_text(errors="replace"))
            if match:
                return match.group(1)
            assert self.proc.poll() is None, f"worker exited early\n{self.logs()}"
            time.sleep(0.05)
        raise AssertionError(f"worker did not start\n{self.logs()}")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    (tmp_path / "heldflows.py").write_text(HELD, encoding="utf-8")
    started: list[Worker] = []
    yield started
    (tmp_path / "go").touch()
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


def _schedule(cwd: Path, url: str) -> str:
    code = (
        "import sys; from cloacina import DefaultRunner; import heldflows; "
        "r = DefaultRunner(sys.argv[1], execute_tasks=False); "
        "print(r.schedule_workflow('held_task')); r.shutdown()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, url],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.strip()


def _task(cwd: Path, url: str, eid: str) -> dict[str, Any]:
    res = run_cli("executions", "show", eid, "--db", url, "--json", cwd=cwd)
    assert res.returncode == 0, res
    task: dict[str, Any] = json.loads(res.stdout)["tasks"]["hold"]
    return task


def _wait_for(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_killed_worker_shows_no_tasks_once_another_took_them_back(
    url: str, tmp_path: Path, workers: list[Worker]
) -> None:
    first = Worker(url, tmp_path, "first")
    workers.append(first)
    eid = _schedule(tmp_path, url)
    attempt = tmp_path / f"attempt-{first.proc.pid}"
    _wait_for("the first worker to run the task", attempt.exists)
    time.sleep(0.6)  # a few heartbeats that report the task as running
    before = {
        w["id"]: w
        for w in json.loads(run_cli("workers", "list", "--db", url, "--json", cwd=tmp_path).stdout)
    }
    assert before[first.id]["running_tasks"] == 1, before

    first.proc.send_signal(signal.SIGKILL)
    assert first.proc.wait(10) == -signal.SIGKILL
    second = Worker(url, tmp_path, "second")
    workers.append(second)
    _wait_for(
        "the second worker to take the task back",
        lambda: (tmp_path / f"attempt-{second.proc.pid}").exists(),
    )
    task = _task(tmp_path, url, eid)
    assert task["status"] == "running" and task["recoveries"] == 1, task

    res = run_cli("workers", "list", "--db", url, "--json", cwd=tmp_path)
    assert res.returncode == 0, res
    rows = {w["id"]: w for w in json.loads(res.stdout)}
    assert rows[first.id]["running_tasks"] == 0, rows  # it died: it holds nothing now
    assert rows[second.id]["running_tasks"] == 1, rows
    table = run_cli("workers", "list", "--db", url, cwd=tmp_path)
    assert table.returncode == 0, table
    line = {w: next(ln for ln in table.stdout.splitlines() if w.id in ln) for w in (first, second)}
    assert re.search(r"\b0/\d+\s*$", line[first]), table
    assert re.search(r"\b1/\d+\s*$", line[second]), table

    (tmp_path / "go").touch()
    _wait_for("the run to complete", lambda: _task(tmp_path, url, eid)["status"] == "completed")
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(30) == 0, second.logs()
