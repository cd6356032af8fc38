"""Alerts with worker processes on one PostgreSQL database: each alert reaches the webhook
exactly once, whichever worker failed the run, and whichever polled the outbox first; a
worker killed mid-task is reported lost once, and its task recovered once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloacina import DefaultRunner
from cloacina.service.alerts import verify_signature

pytestmark = pytest.mark.timeout(120)

WORKER_SCRIPT = Path(__file__).with_name("worker_proc.py")

MODULE = '''\
"""Workflows of the multi-process alert tests."""

import os
import time

from cloacina import Context, RetryPolicy, task, workflow


@workflow(name="FAIL_NAME")
class Failing:
    @task(retry=RetryPolicy(max_attempts=3, initial_delay=0.05, jitter=False))
    def boom(context: Context) -> None:
        raise ValueError(f"boom in {os.getpid()}")


@workflow(name="SLOW_NAME")
class Slow:
    @task
    def long(context: Context) -> None:
        marker = os.environ["MARKER"]
        if not os.path.exists(marker):
            open(marker, "w").write(str(os.getpid()))
            time.sleep(60)  # the test kills this worker meanwhile
'''


class Hook:
    """A webhook on 127.0.0.1 that records every POST and answers 200."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.lock:
                    hook.got.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def payloads(self, rule: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            found = [json.loads(body) for _headers, body in self.got]
        return [p for p in found if rule is None or p["rule"] == rule]

    def wait_for(self, count: int, rule: str | None = None, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.payloads(rule)) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"got {self.payloads()!r}, not {count} alert(s) of {rule}")
            time.sleep(0.05)


@pytest.fixture
def hook() -> Iterator[Hook]:
    made = Hook()
    yield made
    made.server.shutdown()
    made.server.server_close()


class Workers:
    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.module = f"alertwf_{uuid.uuid4().hex[:10]}"
        self.failing = f"alert_fail_{uuid.uuid4().hex[:8]}"
        self.slow = f"alert_slow_{uuid.uuid4().hex[:8]}"
        self.marker = tmp_path / "long.started"
        source = MODULE.replace("FAIL_NAME", self.failing).replace("SLOW_NAME", self.slow)
        (tmp_path / f"{self.module}.py").write_text(source)
        self.env = {**os.environ, "MARKER": str(self.marker)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, **settings: Any) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        out = self.tmp_path / f"w{n}.out"
        with out.open("wb") as out_f, (self.tmp_path / f"w{n}.err").open("wb") as err_f:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER_SCRIPT),
                    self.url,
                    str(self.tmp_path),
                    self.module,
                    json.dumps(settings),
                ],
                stdout=out_f,
                stderr=err_f,
                env=self.env,
            )
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while not out.read_text().startswith("ready "):
            assert proc.poll() is None, (self.tmp_path / f"w{n}.err").read_text()
            assert time.monotonic() < deadline, "the worker was not ready in 30s"
            time.sleep(0.05)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    made = Workers(postgres_url, tmp_path)
    sys.path.insert(0, str(tmp_path))  # the client schedules by name: the same workflows
    try:
        __import__(made.module)
        yield made
    finally:
        made.stop_all()
        sys.path.remove(str(tmp_path))
        sys.modules.pop(made.module, None)


def test_two_workers_deliver_each_failed_run_exactly_once(workers: Workers, hook: Hook) -> None:
    client = DefaultRunner(workers.url, execute_tasks=False)
    try:
        channel = client.add_alert_channel("ops", hook.url, rules=["run_failed"])
        assert channel.secret is not None
        workers.start()
        workers.start()
        runs = [client.schedule_workflow(workers.failing) for _ in range(4)]
        for eid in runs:
            result = client.wait(eid, timeout=60)
            assert result.status == "failed"
            assert result.tasks["boom"].attempts == 3
        hook.wait_for(len(runs))
        time.sleep(2.0)  # both workers poll the outbox meanwhile: no second delivery
        with hook.lock:
            got = list(hook.got)
        assert sorted(json.loads(body)["execution_id"] for _h, body in got) == sorted(runs)
        for headers, body in got:
            assert verify_signature(channel.secret, body, headers["X-Cloacina-Signature"])
        deliveries = client.list_alert_deliveries()
        assert len(deliveries) == len(runs)
        assert all(d.status_code == 200 for d in deliveries)
    finally:
        client.shutdown()


def test_a_killed_worker_is_reported_lost_once_and_its_task_recovered_once(
    workers: Workers, hook: Hook
) -> None:
    client = DefaultRunner(workers.url, execute_tasks=False)
    try:
        client.add_alert_channel("ops", hook.url, rules=["worker_lost", "task_recovered"])
        first = workers.start()
        second = workers.start()
        eid = client.schedule_workflow(workers.slow)
        deadline = time.monotonic() + 30
        while not workers.marker.exists() or not workers.marker.read_text():
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        victim = first if workers.marker.read_text() == str(first.pid) else second
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        assert client.wait(eid, timeout=60).status == "completed"
        hook.wait_for(1, "worker_lost")
        hook.wait_for(1, "task_recovered")
        time.sleep(2.0)
        (lost,) = hook.payloads("worker_lost")
        assert lost["pid"] == victim.pid
        (recovered,) = hook.payloads("task_recovered")
        assert recovered["execution_id"] == eid and recovered["task_id"] == "long"
        assert recovered["outcome"] == "requeued" and recovered["recovery"] == 1
    finally:
        client.shutdown()
