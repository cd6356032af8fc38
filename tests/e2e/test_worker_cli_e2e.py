"""``cloacina worker`` and ``cloacina workers list`` end to end: worker subprocesses on a real
SQLite file and a real PostgreSQL database, fed by a submit-only client in the test."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cloacina import DefaultRunner

from .helpers import run_cli

#: Workflows the worker runs; every task records the pid of the process that ran it.
WORKER_FLOWS = textwrap.dedent(
    """
    import os
    import time

    from cloacina import Context, task, workflow


    @workflow(name="worker_e2e_pids")
    class worker_e2e_pids:
        @task()
        def first(context: Context) -> None:
            context.insert("first_pid", os.getpid())

        @task(dependencies=["first"])
        def second(context: Context) -> None:
            context.insert("second_pid", os.getpid())


    @workflow(name="worker_e2e_nap")
    class worker_e2e_nap:
        @task()
        def nap(context: Context) -> None:
            time.sleep(float(context.get("seconds", 1)))
            context.insert("napped_in", os.getpid())
    """
)
MODULE = "worker_flows"
#: Short intervals so that the tests do not wait for the defaults.
FAST = ("--poll-interval", "0.1", "--heartbeat-interval", "0.2", "--stale-claim-threshold", "3")
STARTED = re.compile(r"cloacina worker (\S+) started")


def load_module(path: Path) -> ModuleType:
    """Import ``path`` into this process (its workflows join this process's catalog, with the
    same versions the worker computes from the same source)."""
    name = f"_e2e_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Worker:
    """A ``cloacina worker`` subprocess; its stdout and stderr go to files in its cwd."""

    def __init__(self, url: str, cwd: Path, *args: str) -> None:
        n = len(list(cwd.glob("worker-*.out")))
        self.out = cwd / f"worker-{n}.out"
        self.err = cwd / f"worker-{n}.err"
        env = {k: v for k, v in os.environ.items() if k not in ("CLOACINA_DB", "CLOACINA_TENANT")}
        env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
        argv = [sys.executable, "-m", "cloacina", "worker", "--db", url, "--module", MODULE]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [*argv, *FAST, *args], cwd=cwd, env=env, stdout=out, stderr=err
            )
        self.id = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> str:
        return (
            f"--- worker stdout ---\n{self.out.read_text(errors='replace')}\n"
            f"--- worker stderr ---\n{self.err.read_text(errors='replace')}"
        )

    def wait_started(self, timeout: float = 20) -> str:
        """The worker's id, once it printed its startup line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = STARTED.search(self.out.read_text(errors="replace"))
            if match:
                self.id = match.group(1)
                return self.id
            assert self.proc.poll() is None, f"worker exited early\n{self.logs()}"
            time.sleep(0.05)
        raise AssertionError(f"worker did not start within {timeout}s\n{self.logs()}")

    def terminate(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not stop within {timeout}s\n{self.logs()}") from None


StartWorker = Callable[..., Worker]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def start_worker(url: str, tmp_path: Path) -> Iterator[StartWorker]:
    """Start workers on ``url`` (cwd: ``tmp_path``, holding the workflow module); any still
    running at the end are killed."""
    (tmp_path / f"{MODULE}.py").write_text(WORKER_FLOWS, encoding="utf-8")
    load_module(tmp_path / f"{MODULE}.py")
    started: list[Worker] = []

    def start(*args: str) -> Worker:
        worker = Worker(url, tmp_path, *args)
        started.append(worker)
        worker.wait_started()
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


def client(url: str) -> DefaultRunner:
    """A submit-only client: it schedules and waits; the workers execute."""
    return DefaultRunner(url, execute_tasks=False, poll_interval=0.05)


def wait_for_task(runner: DefaultRunner, execution_id: str, task_id: str, status: str) -> None:
    deadline = time.monotonic() + 20
    while runner.get_execution(execution_id).tasks[task_id].status != status:
        assert time.monotonic() < deadline, f"task {task_id} never became {status}"
        time.sleep(0.02)


def workers_json(url: str, cwd: Path, *args: str) -> list[dict[str, Any]]:
    res = run_cli("workers", "list", "--db", url, "--json", *args, cwd=cwd)
    assert res.returncode == 0, res
    rows: list[dict[str, Any]] = json.loads(res.stdout)
    return rows


def test_worker_executes_runs_and_stops_gracefully(
    url: str, tmp_path: Path, start_worker: StartWorker
) -> None:
    worker = start_worker("--grace", "5s")
    assert worker.id.split(":")[1] == str(worker.pid)

    with client(url) as runner:
        ids = [runner.schedule_workflow("worker_e2e_pids", {"n": n}) for n in range(3)]
        for execution_id in ids:
            result = runner.wait(execution_id, timeout=20)
            assert result.status == "completed", result
            assert result.final_context["first_pid"] == worker.pid
            assert result.final_context["second_pid"] == worker.pid
        assert worker.pid != os.getpid()

        rows = workers_json(url, tmp_path)
        mine = [r for r in rows if r["id"] == worker.id]
        assert len(mine) == 1, rows
        assert mine[0]["pid"] == worker.pid
        assert mine[0]["status"] == "running"
        assert mine[0]["heartbeat_age"] < 5
        table = run_cli("workers", "list", "--db", url, cwd=tmp_path)
        assert table.returncode == 0, table
        line = next(ln for ln in table.stdout.splitlines() if worker.id in ln)
        assert "running" in line and str(worker.pid) in line and "ago" in line

        # SIGTERM while a task runs: the worker lets it finish (grace 5s), then exits 0.
        nap = runner.schedule_workflow("worker_e2e_nap", {"seconds": 1})
        wait_for_task(runner, nap, "nap", "running")
        signalled = time.monotonic()
        assert worker.terminate() == 0, worker.logs()
        assert time.monotonic() - signalled < 5
        result = runner.get_execution(nap)
        assert result.status == "completed", worker.logs()
        assert result.final_context["napped_in"] == worker.pid
        assert "task_handed_back" not in {e.event for e in runner.store.get_events(nap)}

    assert "received SIGTERM" in worker.err.read_text()
    assert worker.id not in {r["id"] for r in workers_json(url, tmp_path)}
    stopped = [r for r in workers_json(url, tmp_path, "--all") if r["id"] == worker.id]
    assert len(stopped) == 1 and stopped[0]["status"] == "stopped"
    assert stopped[0]["stopped_at"] is not None


def test_short_grace_hands_task_back_to_another_worker(
    url: str, tmp_path: Path, start_worker: StartWorker
) -> None:
    first = start_worker("--grace", "0.5")
    with client(url) as runner:
        execution_id = runner.schedule_workflow("worker_e2e_nap", {"seconds": 5})
        wait_for_task(runner, execution_id, "nap", "running")
        signalled = time.monotonic()
        assert first.terminate() == 0, first.logs()
        assert time.monotonic() - signalled < 4, "the worker waited for the task to finish"
        events = [e.event for e in runner.store.get_events(execution_id)]
        assert "task_handed_back" in events, events
        state = runner.get_execution(execution_id)
        assert state.status == "running"
        assert state.tasks["nap"].status == "ready"
        assert "handed back 1 running task" in first.err.read_text()

        second = start_worker()
        result = runner.wait(execution_id, timeout=30)
        assert result.status == "completed", second.logs()
        assert result.final_context["napped_in"] == second.pid
        assert result.tasks["nap"].attempts == 1  # handing back is neither a retry ...
        assert result.tasks["nap"].recoveries == 0  # ... nor a recovery
    assert second.terminate() == 0, second.logs()


def test_worker_usage_errors(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    res = run_cli("worker", "--db", db, "--grace", "soon", cwd=tmp_path)
    assert res.returncode == 2 and "invalid duration 'soon'" in res.stderr, res
    res = run_cli(
        "worker",
        "--db",
        db,
        "--heartbeat-interval",
        "5s",
        "--stale-claim-threshold",
        "2s",
        cwd=tmp_path,
    )
    assert res.returncode == 2 and "--stale-claim-threshold" in res.stderr, res
    res = run_cli("worker", "--db", db, "--tenant", "nobody", cwd=tmp_path)
    assert res.returncode == 2 and "cloacina tenant create nobody" in res.stderr, res
    res = run_cli("worker", "--db", db, "--module", "no_such_module", cwd=tmp_path)
    assert res.returncode == 2 and "no_such_module" in res.stderr, res
    res = run_cli("workers", "list", "--db", db, cwd=tmp_path)
    assert res.returncode == 2 and "no database" in res.stderr, res
