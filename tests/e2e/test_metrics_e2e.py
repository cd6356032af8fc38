"""End to end: ``cloacina worker --metrics-port`` serves Prometheus metrics over HTTP (parsed
with prometheus-client's parser), and ``cloacina workflows stats`` shows where a workflow's
runs spend their time."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .helpers import Cli


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLOACINA_DB"}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    return env


def _submit(cwd: Path, db: str, runs: list[str]) -> list[str]:
    """Schedule runs of ``flows`` workflows from a submit-only client, wait for all of them
    (run by the worker), and return their statuses."""
    code = (
        "import sys; from cloacina import DefaultRunner; import flows\n"
        "with DefaultRunner(sys.argv[1], execute_tasks=False) as r:\n"
        "    ids = [r.schedule_workflow(name) for name in sys.argv[2:]]\n"
        "    print(' '.join(str(r.wait(i, timeout=60).status) for i in ids))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, db, *runs],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _start_worker(cwd: Path, db: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloacina", "worker", "--db", db, "-m", "flows", *extra],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_worker_serves_metrics_on_its_port(tmp_path: Path, flows: Path, db: str) -> None:
    worker = _start_worker(tmp_path, db, "--metrics-port", "0", "--poll-interval", "0.05")
    try:
        assert worker.stdout is not None and worker.stderr is not None
        line = worker.stdout.readline()
        found = re.search(r"metrics at (http://127\.0\.0\.1:(\d+)/metrics)", line)
        assert found, line + (worker.stderr.read() if worker.poll() is not None else "")
        url = found.group(1)
        statuses = _submit(tmp_path, db, ["greeting"] * 3 + ["broken"] * 2)
        assert statuses == ["completed"] * 3 + ["failed"] * 2

        def value(name: str, **labels: str) -> float:
            return samples.get((name, tuple(sorted(labels.items()))), 0.0)

        deadline = time.monotonic() + 10
        while True:  # counted just after each commit, which the client may see first
            samples = _scrape(url)
            if value("cloacina_runs_finished_total", workflow="broken", outcome="failed") == 2:
                break
            assert time.monotonic() < deadline, samples
            time.sleep(0.05)
        assert value("cloacina_runs_finished_total", workflow="greeting", outcome="completed") == 3
        assert value("cloacina_tasks_finished_total", workflow="greeting", outcome="completed") == 6
        # broken: extract completes, transform fails twice (one retry), load is skipped.
        assert value("cloacina_tasks_finished_total", workflow="broken", outcome="completed") == 2
        assert value("cloacina_tasks_finished_total", workflow="broken", outcome="failed") == 2
        assert value("cloacina_tasks_finished_total", workflow="broken", outcome="skipped") == 2
        assert value("cloacina_task_retries_total", workflow="broken") == 2
        assert value("cloacina_task_duration_seconds_count", workflow="greeting") == 6
        # Every first attempt's wait, those of the roots (whose runs the client created)
        # read from the database at the scrape; broken's retry adds one more.
        assert value("cloacina_task_queue_wait_seconds_count", workflow="greeting") == 6
        assert value("cloacina_task_queue_wait_seconds_count", workflow="broken") == 6
        assert value("cloacina_live_workers") == 1
        assert value("cloacina_running_tasks") == 0
        assert value("cloacina_process_cpu_seconds_total") > 0
        port = int(found.group(2))
    finally:
        worker.send_signal(signal.SIGTERM)
        _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    with socket.socket() as probe:  # the endpoint went with the worker
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_worker_refuses_a_metrics_port_in_use(tmp_path: Path, flows: Path, db: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = _start_worker(tmp_path, db, "--metrics-port", str(port))
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 2, out + err
    assert f"cannot serve metrics on 127.0.0.1:{port}" in err
    assert "choose another --metrics-port" in err


def test_workflows_stats_shows_tasks_and_the_critical_path(cli: Cli, flows: Path, db: str) -> None:
    for _ in range(3):
        assert cli("run", "greeting", "-m", "flows", "--db", db).returncode == 0
    assert cli("run", "broken", "-m", "flows", "--db", db).returncode != 0

    table = cli("workflows", "stats", "greeting", "--db", db)
    assert table.returncode == 0, table
    assert "greeting: 3 finished runs (3 completed, 0 failed" in table.stdout
    for header in ("task", "runs", "failed", "attempts", "p50", "p95", "wait p50", "wait p95"):
        assert header in table.stdout
    assert re.search(r"critical path \(in 3 of 3 runs, .*\): greet (->|→) shout", table.stdout)

    data = json.loads(cli("workflows", "stats", "greeting", "--db", db, "--json").stdout)
    assert data["runs"] == 3 and data["critical_path"] == ["greet", "shout"]
    assert [t["task_id"] for t in data["tasks"]] == ["greet", "shout"]
    assert all(t["duration_p50"] is not None for t in data["tasks"])

    broken = json.loads(cli("workflows", "stats", "broken", "--db", db, "--json").stdout)
    by_id = {t["task_id"]: t for t in broken["tasks"]}
    assert broken["failure_rate"] == 1.0
    assert by_id["transform"]["failure_rate"] == 1.0 and by_id["transform"]["attempts"] == 2
    assert by_id["load"]["skipped"] == 1 and by_id["load"]["failure_rate"] == 0.0

    last = json.loads(
        cli("workflows", "stats", "greeting", "--db", db, "--last", "1", "--json").stdout
    )
    assert last["runs"] == 1

    unknown = cli("workflows", "stats", "greetin", "--db", db)
    assert unknown.returncode == 2
    assert "did you mean 'greeting'?" in unknown.stderr
