"""Scale-out with registered packages, end to end on a real PostgreSQL database (README, "Many
workers on PostgreSQL"): two ``cloacina worker`` processes started with no ``--module`` and
before any package exists pick up examples/simple_packaged_demo once it is built and
registered with the CLI, and run every run that a submit-only client in the test schedules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloacina import DefaultRunner

from .helpers import Result, run_cli
from .test_worker_cli_e2e import FAST, Worker

pytestmark = pytest.mark.timeout(90)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "simple_packaged_demo"
ARCHIVE = "simple_demo-1.0.0.cloacina"
WORKFLOW = "data_processing"
TASKS = ["collect_data", "process_data", "generate_report"]
RUNS = 6
#: The example's tasks sleep this long (its package processes inherit the worker's env):
#: long enough that one worker with two slots cannot drain the queue before the other looks.
STEP_DELAY = "0.2"


class PackageWorker(Worker):
    """A ``cloacina worker`` with no ``--module``: it runs only registered packages."""

    def __init__(self, url: str, cwd: Path, *args: str) -> None:
        n = len(list(cwd.glob("worker-*.out")))
        self.out = cwd / f"worker-{n}.out"
        self.err = cwd / f"worker-{n}.err"
        env = {k: v for k, v in os.environ.items() if k not in ("CLOACINA_DB", "CLOACINA_TENANT")}
        env.update(
            {
                "COLUMNS": "200",
                "NO_COLOR": "1",
                "PYTHONIOENCODING": "utf-8",
                "SIMPLE_DEMO_STEP_DELAY": STEP_DELAY,
            }
        )
        argv = [sys.executable, "-m", "cloacina", "worker", "--db", url, *FAST, *args]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        self.id = ""


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[list[PackageWorker]]:
    """Two workers on ``postgres_url``, started (each in a directory of its own, holding no
    workflow module); any still running at the end are killed."""
    started: list[PackageWorker] = []
    try:
        for n in range(2):
            cwd = tmp_path / f"worker{n}"
            cwd.mkdir()
            started.append(PackageWorker(postgres_url, cwd, "--max-concurrent-tasks", "2"))
        for worker in started:
            worker.wait_started(timeout=30)
        yield started
    finally:
        for worker in started:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(10)


def ok(res: Result, logs: str = "") -> Result:
    assert res.returncode == 0, f"{res}\n{logs}"
    return res


def test_two_workers_run_a_package_registered_after_they_started(
    postgres_url: str, tmp_path: Path, workers: list[PackageWorker]
) -> None:
    first, second = workers
    logs = "\n".join(w.logs() for w in workers)
    assert first.id != second.id
    for worker in workers:
        assert worker.id.split(":")[1] == str(worker.pid)
        # Nothing to run yet: no --module, no package registered.
        assert "workflows: none yet" in worker.out.read_text(errors="replace"), logs

    # Build the example (a copy: nothing is written into the repository) and register it.
    project = tmp_path / "simple_packaged_demo"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("dist", "__pycache__"))
    dist = tmp_path / "dist"
    ok(run_cli("package", "build", project, "--output", dist, cwd=tmp_path, timeout=60))
    archive = dist / ARCHIVE
    assert archive.is_file(), sorted(p.name for p in dist.iterdir())
    registered = ok(run_cli("package", "register", archive, "--db", postgres_url, cwd=tmp_path))
    assert "simple_demo" in registered.output, registered

    with DefaultRunner(postgres_url, execute_tasks=False, poll_interval=0.05) as client:
        ids = [client.schedule_workflow(WORKFLOW, {"run": n}) for n in range(RUNS)]
        results = [client.wait(execution_id, timeout=40) for execution_id in ids]

        logs = "\n".join(w.logs() for w in workers)
        for n, result in enumerate(results):
            assert result.status == "completed", f"{result}\n{logs}"
            assert result.package == "simple_demo"
            assert list(result.tasks) == TASKS
            ctx = result.final_context
            assert ctx["run"] == n
            assert ctx["raw_data"]["records"] == 1000
            assert ctx["raw_data"]["source"] == "demo_database"
            assert ctx["processed_data"] == {
                "processed_records": 950,
                "original_count": 1000,
                "status": "validated",
            }
            report = ctx["final_report"]
            assert report["report_id"].startswith("RPT_")
            assert report["summary"] == {"total_processed": 950, "success_rate": "95%"}

        # Every task ran once, in one of the two workers; the client ran none.
        live = {row.id: row for row in client.store.list_workers()}
        assert set(live) == {first.id, second.id}, live
        assert {live[w.id].pid for w in workers} == {first.pid, second.pid}
        assert all(row.status == "running" for row in live.values()), live
        assert client.worker_id not in live
        ran_by: dict[str, int] = {}
        for execution_id in ids:
            rows = client.store.get_tasks(execution_id)
            assert sorted(r.task_id for r in rows) == sorted(TASKS)
            for row in rows:
                assert row.status == "completed" and row.attempt == 1, row
                assert row.worker_id in live, (row, live)
                ran_by[row.worker_id] = ran_by.get(row.worker_id, 0) + 1
        assert sum(ran_by.values()) == RUNS * len(TASKS)
        # Two task slots each and 18 tasks of 0.2 s: the second worker, polling every 0.1 s,
        # always finds work before the first can drain the queue alone.
        assert set(ran_by) == {first.id, second.id}, ran_by

        # SIGTERM: both stop cleanly and say so in the workers table.
        for worker in workers:
            assert worker.terminate() == 0, worker.logs()
        stopped = {row.id: row for row in client.store.list_workers(include_stopped=True)}
        assert {stopped[w.id].status for w in workers} == {"stopped"}, stopped
        assert client.store.list_workers() == []
