"""The CLI through a server (``--server URL`` with ``--api-key`` or ``$CLOACINA_API_KEY``), end
to end: ``cloacina serve`` in a subprocess, the CLI in others. A package built by the CLI is
registered through the server, runs are started, listed, shown, followed, their logs read
and one cancelled, all through ``--server``; the same commands with ``--db`` on the same
database print the same JSON; the audit log names the key; a bad key and an unreachable
server are clear errors that never echo the key."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import Cli

pytestmark = pytest.mark.timeout(240)

FLOWS = textwrap.dedent(
    """
    import asyncio

    from cloacina import Context, task, workflow


    @workflow(name="chatty")
    class chatty:
        @task()
        def speak(context: Context) -> None:
            print(f"speaking to {context.get('name', 'nobody')}")
            context.insert("spoken", True)

        @task(dependencies=["speak"])
        def shout(context: Context) -> None:
            context.insert("shout", f"HELLO {context.get('name', 'world').upper()}")


    @workflow(name="sleepy")
    class sleepy:
        @task()
        async def nap(context: Context) -> None:
            await asyncio.sleep(60)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path, cli: Cli) -> Iterator[tuple[str, str, str]]:
    """``(base URL, admin key, database URL)`` of ``cloacina serve`` on a SQLite file, with
    the workflows of FLOWS."""
    db = f"sqlite:///{tmp_path / 'served.db'}"
    made = cli("api-keys", "create", "--db", db, "--name", "cli-e2e", "--role", "admin")
    assert made.returncode == 0, made
    key = made.stdout.strip().splitlines()[-1]
    (tmp_path / "flows.py").write_text(FLOWS, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("CLOACINA_DB", "CLOACINA_API_KEY")}
    args = ["serve", "--db", db, "--port", str(port), "--module", "flows.py"]
    args += ["--shutdown-grace", "1s", "--log-level", "warning"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloacina", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # a loaded machine: imports take a while
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "cloacina serve did not become ready"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield base, key, db
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_cli_through_a_server(tmp_path: Path, cli: Cli, server: tuple[str, str, str]) -> None:
    base, key, db = server
    env = {"CLOACINA_API_KEY": key}

    # A package built by the CLI, registered through the server, run there.
    assert cli("package", "new", "e2e-remote").returncode == 0
    built = cli("package", "build", "e2e-remote", timeout=120)
    assert built.returncode == 0, built
    [archive] = (tmp_path / "e2e-remote" / "dist").glob("*.cloacina")
    registered = cli("package", "register", archive, "--server", base, "--api-key", key)
    assert registered.returncode == 0, registered
    assert f"Registered e2e_remote 0.1.0 in {base}" in registered.stdout
    listed = cli("package", "list", "--server", base, "--json", env=env)
    assert [p["package"] for p in json.loads(listed.stdout)] == ["e2e_remote"]
    workflows = cli("workflows", "list", "--server", base, "--json", env=env)
    names = {w["workflow"] for w in json.loads(workflows.stdout)}
    assert {"e2e_remote_pipeline", "chatty", "sleepy"} <= names, workflows
    packaged = cli("run", "e2e_remote_pipeline", "--server", base, "--json", env=env, timeout=120)
    assert packaged.returncode == 0, packaged
    assert json.loads(packaged.stdout)["package"] == "e2e_remote"

    # An embedded workflow of the server's module, run from here; the group's --server.
    ran = cli("--server", base, "run", "chatty", "--context", '{"name": "ann"}', env=env)
    assert ran.returncode == 0, ran
    assert "HELLO ANN" in ran.stdout and "completed" in ran.stdout

    runs = json.loads(cli("executions", "list", "--server", base, "--json", env=env).stdout)
    assert [r["workflow"] for r in runs] == ["chatty", "e2e_remote_pipeline"]
    chatty_id = runs[0]["execution_id"]
    # The same command on the database itself prints the same JSON.
    assert json.loads(cli("executions", "list", "--db", db, "--json").stdout) == runs
    remote_show = cli("executions", "show", chatty_id[:8], "--server", base, "--json", env=env)
    local_show = cli("executions", "show", chatty_id[:8], "--db", db, "--json")
    assert remote_show.returncode == 0, remote_show
    assert json.loads(remote_show.stdout) == json.loads(local_show.stdout)

    logs = cli("executions", "logs", chatty_id[:8], "--server", base, env=env)
    assert logs.returncode == 0, logs
    assert "==> speak (attempt 1) <==" in logs.stdout and "speaking to ann" in logs.stdout
    one = cli("executions", "logs", chatty_id, "--task", "speak", "--server", base, env=env)
    assert one.stdout == "speaking to ann\n"
    watched = cli("executions", "watch", chatty_id[:8], "--server", base, env=env)
    assert watched.returncode == 0 and "completed" in watched.stdout, watched

    stats = cli("workflows", "stats", "chatty", "--server", base, "--json", env=env)
    assert stats.returncode == 0, stats
    local_stats = cli("workflows", "stats", "chatty", "--db", db, "--json")
    assert json.loads(stats.stdout) == json.loads(local_stats.stdout)
    assert json.loads(stats.stdout)["runs"] == 1

    workers = json.loads(cli("workers", "list", "--server", base, "--json", env=env).stdout)
    assert len(workers) == 1 and workers[0]["status"] == "running"

    # A run past --timeout is cancelled on the server.
    timed = cli("run", "sleepy", "--server", base, "--timeout", "1", "--json", env=env)
    assert timed.returncode == 1, timed
    assert "did not finish within 1s; it was cancelled" in timed.stderr
    assert json.loads(timed.stdout)["status"] == "cancelled"

    # A long run, cancelled through the server.
    started = subprocess.Popen(
        [sys.executable, "-m", "cloacina", "run", "sleepy", "--server", base],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        sleepy: list[dict[str, str]] = []
        while not sleepy:
            assert time.monotonic() < deadline, "the sleepy run did not start"
            listing = cli(
                "executions", "list", "--server", base, "--status", "running", "--json", env=env
            )
            sleepy = [r for r in json.loads(listing.stdout or "[]") if r["workflow"] == "sleepy"]
            time.sleep(0.2)
        sleepy_id = sleepy[0]["execution_id"]
        cancelled = cli("executions", "cancel", sleepy_id[:8], "--server", base, env=env)
        assert cancelled.returncode == 0, cancelled
        assert f"Cancelled workflow execution {sleepy_id}" in cancelled.stdout
        out, err = started.communicate(timeout=30)
        assert started.returncode == 1, (out, err)  # the run it was following was cancelled
        again = cli("executions", "cancel", sleepy_id, "--server", base, env=env)
        assert again.returncode == 1 and "already cancelled" in again.stderr
    finally:
        if started.poll() is None:
            started.kill()
            started.communicate()

    # The audit log (read on the database) names the key for what the server did.
    audit = json.loads(cli("audit", "list", "--db", db, "--json").stdout)["items"]
    by_key = {(a["action"], a["actor"].split(" ")[0]) for a in audit}
    key_actor = next(a["actor"] for a in audit if a["action"] == "package.register")
    assert key_actor.startswith("key:") and key_actor.endswith("(cli-e2e)")
    for action in ("package.register", "run.start", "run.cancel"):
        assert (action, key_actor.split(" ")[0]) in by_key, audit
    remote_audit = cli("audit", "list", "--server", base, "--json", env=env)
    assert json.loads(remote_audit.stdout)["items"] == audit
    exported = cli("audit", "export", "--server", base, "--format", "jsonl", env=env)
    assert [json.loads(line)["id"] for line in exported.stdout.splitlines()] == [
        a["id"] for a in audit
    ]

    # Keys through the server: made, listed (never the secret), revoked.
    made = cli("api-keys", "create", "--server", base, "--name", "remote", "--role", "viewer")
    assert made.returncode != 0  # no key in the environment
    made = cli(
        "api-keys", "create", "--name", "remote", "--role", "viewer", "--server", base, env=env
    )
    assert made.returncode == 0, made
    secret = made.stdout.strip().splitlines()[-1]
    keys = cli("api-keys", "list", "--server", base, "--json", env=env)
    assert secret not in keys.stdout
    remote_id = next(k["id"] for k in json.loads(keys.stdout) if k["name"] == "remote")
    assert cli("executions", "list", "--server", base, "--api-key", secret).returncode == 0
    revoked = cli("api-keys", "revoke", remote_id[:8], "--server", base, env=env)
    assert revoked.returncode == 0, revoked
    assert cli("executions", "list", "--server", base, "--api-key", secret).returncode == 2


def test_bad_keys_and_unreachable_servers(cli: Cli, server: tuple[str, str, str]) -> None:
    base, key, _db = server
    bad = "clk_" + "A" * 43
    refused = cli("executions", "list", "--server", base, "--api-key", bad)
    assert refused.returncode == 2
    assert "API key" in refused.stderr and bad not in refused.output
    missing = cli("executions", "list", "--server", base)
    assert missing.returncode != 0 and "CLOACINA_API_KEY" in missing.stderr
    gone = cli("executions", "list", "--server", "http://127.0.0.1:1", "--api-key", key)
    assert gone.returncode == 2 and "cannot reach" in gone.stderr
    assert key not in gone.output
    viewer = cli("api-keys", "create", "--db", _db, "--name", "looker", "--role", "viewer")
    looker = viewer.stdout.strip().splitlines()[-1]
    denied = cli("run", "chatty", "--server", base, "--api-key", looker)
    assert denied.returncode == 2 and "operator" in denied.stderr, denied
