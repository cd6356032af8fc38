"""``cloacina serve`` end to end: the real CLI in a subprocess on a free port. It refuses to
start without an API key; with one made by ``cloacina api-keys create``, a package built by
``cloacina package build`` is uploaded over HTTP, run, its events streamed, its logs read,
the audit rows are there; SIGTERM ends an open event stream and stops the server cleanly
(exit 0) even with a task running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import Cli

pytestmark = pytest.mark.timeout(180)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "CLOACINA_DB"}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    return subprocess.Popen(
        [sys.executable, "-m", "cloacina", "serve", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(base: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"cloacina serve exited {proc.returncode}:\n{out}\n{err}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("cloacina serve did not become ready")


def sse(base: str, key: str, execution_id: str) -> Iterator[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    url = f"{base}/api/v1/executions/{execution_id}/events"
    with httpx.stream("GET", url, headers=headers, timeout=60) as answer:
        assert answer.status_code == 200
        event: dict[str, Any] = {}
        for line in answer.iter_lines():
            if line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("event: "):
                event["event"] = line[7:]
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif line == "" and event:
                yield event
                event = {}


SLEEPY = """
import asyncio

from cloacina import Context, task, workflow


@workflow(name="e2e_sleepy")
class e2e_sleepy:
    @task()
    async def nap(context: Context) -> None:
        await asyncio.sleep(60)
"""


def test_serve_upload_run_stream_audit_and_sigterm(cli: Cli, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'served.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    # No key in the database: refused before listening.
    refused = cli("serve", "--db", db, "--port", str(port), timeout=60)
    assert refused.returncode != 0
    assert "no active API key" in refused.stderr
    assert not listening(port)
    # --no-auth on an address other machines reach: refused too.
    public = cli("serve", "--db", db, "--port", str(port), "--no-auth", "--host", "0.0.0.0")
    assert public.returncode != 0 and "loopback" in public.stderr

    made = cli("api-keys", "create", "--db", db, "--name", "e2e-admin", "--role", "admin")
    assert made.returncode == 0, made
    key = made.stdout.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {key}"}

    assert cli("package", "new", "e2e-flows").returncode == 0
    built = cli("package", "build", "e2e-flows", timeout=120)
    assert built.returncode == 0, built
    archive = (tmp_path / "e2e-flows" / "dist" / "e2e_flows-0.1.0.cloacina").read_bytes()
    (tmp_path / "sleepy.py").write_text(SLEEPY, encoding="utf-8")

    proc = serve(
        tmp_path, "--db", db, "--port", str(port), "--module", "sleepy.py",
        "--shutdown-grace", "1s", "--log-level", "warning",
    )  # fmt: skip
    try:
        wait_ready(base, proc)
        assert httpx.get(f"{base}/api/v1/executions").status_code == 401

        uploaded = httpx.post(
            f"{base}/api/v1/packages",
            content=archive,
            headers={**auth, "Content-Type": "application/octet-stream"},
            timeout=60,
        )
        assert uploaded.status_code == 201, uploaded.text
        workflow = uploaded.json()["workflows"][0]

        started = httpx.post(f"{base}/api/v1/executions", json={"workflow": workflow}, headers=auth)
        assert started.status_code == 201, started.text
        execution_id = started.json()["execution_id"]
        events = list(sse(base, key, execution_id))
        assert events[0]["event"] == "execution_started"
        assert events[-1]["event"] == "execution_completed", events[-1]
        assert all(e["data"]["execution_id"] == execution_id for e in events)

        detail = httpx.get(f"{base}/api/v1/executions/{execution_id}", headers=auth).json()
        assert detail["status"] == "completed"
        task_id = next(iter(detail["tasks"]))
        logs = httpx.get(
            f"{base}/api/v1/executions/{execution_id}/tasks/{task_id}/logs", headers=auth
        )
        assert logs.status_code == 200 and logs.headers["content-type"].startswith("text/plain")

        audit = httpx.get(f"{base}/api/v1/audit", headers=auth).json()["items"]
        actions = {a["action"]: a for a in audit}
        for action in ("package.register", "run.start"):
            assert action in actions, audit
            assert actions[action]["actor"].endswith("(e2e-admin)")
            assert actions[action]["client"] == "127.0.0.1"
            assert actions[action]["request_id"]
        assert key not in json.dumps(audit)
        metrics = httpx.get(f"{base}/metrics", headers=auth)
        assert metrics.status_code == 200 and key not in metrics.text

        # A run that will not end by itself, and a stream open on it.
        sleepy = httpx.post(
            f"{base}/api/v1/executions", json={"workflow": "e2e_sleepy"}, headers=auth
        ).json()["execution_id"]
        streamed: list[dict[str, Any]] = []
        ended = threading.Event()

        def follow() -> None:
            try:
                streamed.extend(sse(base, key, sleepy))
            except httpx.TransportError:
                pass
            ended.set()

        threading.Thread(target=follow, daemon=True).start()
        deadline = time.monotonic() + 10
        while not any(e["event"] == "task_started" for e in streamed):
            assert time.monotonic() < deadline, streamed
            time.sleep(0.05)

        stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - stop
        assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
        assert took < 15, f"SIGTERM took {took:.1f}s"
        assert ended.wait(5), "the open event stream did not end"
        assert "Traceback" not in err, err
        assert not listening(port)
        assert f"http://127.0.0.1:{port}" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    # The running task was handed back on shutdown, not left claimed.
    shown = cli("executions", "show", sleepy, "--db", db)
    assert shown.returncode == 0, shown
    nap_line = next(line for line in shown.stdout.splitlines() if line.startswith("nap"))
    assert nap_line.split()[1] == "ready", shown.stdout


def test_api_only_server_beside_a_worker_on_postgres(
    cli: Cli, tmp_path: Path, flows: Path, postgres_url: str
) -> None:
    """``cloacina serve --no-execute`` runs no task: a ``cloacina worker`` process does, and
    its events reach the server's stream through the database."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    made = cli("api-keys", "create", "--db", postgres_url, "--name", "pg", "--role", "operator")
    assert made.returncode == 0, made
    key = made.stdout.strip().splitlines()[-1]
    server = serve(
        tmp_path, "--db", postgres_url, "--port", str(port), "--no-execute",
        "--module", str(flows), "--log-level", "warning",
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "CLOACINA_DB"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "cloacina", "worker", "--db", postgres_url, "--module", str(flows)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_ready(base, server)
        auth = {"Authorization": f"Bearer {key}"}
        started = httpx.post(
            f"{base}/api/v1/executions",
            json={"workflow": "greeting", "context": {"name": "pg"}},
            headers=auth,
        )
        assert started.status_code == 201, started.text
        execution_id = started.json()["execution_id"]
        events = list(sse(base, key, execution_id))
        assert events[-1]["event"] == "execution_completed", events
        result = httpx.get(f"{base}/api/v1/executions/{execution_id}", headers=auth).json()
        assert result["final_context"]["shout"] == "HELLO PG"
        workers = httpx.get(f"{base}/api/v1/workers", headers=auth).json()["items"]
        ran_on = {a["worker_id"] for a in httpx.get(
            f"{base}/api/v1/executions/{execution_id}/attempts", headers=auth
        ).json()["items"]}  # fmt: skip
        assert ran_on <= {w["id"] for w in workers} and len(ran_on) == 1
        # An operator may not upload packages.
        refused = httpx.post(f"{base}/api/v1/packages", content=b"x", headers=auth)
        assert refused.status_code == 403
    finally:
        for proc in (server, worker):
            proc.send_signal(signal.SIGTERM)
        for proc in (server, worker):
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    assert server.returncode == 0 and worker.returncode == 0
