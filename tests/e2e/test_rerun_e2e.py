"""Run control from the command line and over HTTP (DESIGN §11), end to end: ``cloacina
executions rerun|rerun-failed`` on the database and through ``--server``, ``executions show``
listing every attempt, ``cloacina run --idempotency-key``, and the ``Idempotency-Key`` header
and ``POST .../rerun`` of the HTTP API (audited)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import Cli
from .test_cli_server_e2e import free_port

pytestmark = pytest.mark.timeout(240)

FLAKY = textwrap.dedent(
    """
    from pathlib import Path

    from cloacina import Context, TaskError, task, workflow


    @workflow(name="flaky")
    class flaky:
        @task()
        def extract(context: Context) -> None:
            with open("extract.calls", "a") as f:
                f.write("x")
            context.insert("rows", 3)

        @task(dependencies=["extract"])
        def transform(context: Context) -> None:
            if Path("broken.marker").exists():
                raise TaskError("transform is broken", retryable=False)
            context.insert("doubled", context["rows"] * context.get("factor", 2))

        @task(dependencies=["transform"])
        def load(context: Context) -> None:
            context.insert("loaded", True)
    """
)


@pytest.fixture
def flaky(tmp_path: Path) -> Path:
    (tmp_path / "flaky.py").write_text(FLAKY, encoding="utf-8")
    (tmp_path / "broken.marker").write_text("broken")
    return tmp_path


def _wait(cwd: Path, db: str, eid: str) -> dict[str, object]:
    """Run the run to its end in a worker process of the module; its result as JSON."""
    code = (
        "import sys, json; import flaky; from cloacina import DefaultRunner\n"
        "with DefaultRunner(sys.argv[1]) as r:\n"
        "    res = r.wait(sys.argv[2], timeout=60)\n"
        "    print(json.dumps({'status': str(res.status), 'final': res.final_context}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, db, eid],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def test_rerun_and_idempotency_from_the_cli(cli: Cli, flaky: Path, db: str) -> None:
    first = cli("run", "flaky", "-m", "flaky", "--db", db, "--json", "--idempotency-key", "k1")
    assert first.returncode == 1, first
    eid = json.loads(first.stdout)["execution_id"]
    # The same key again: the same run (it failed: the same result), not a new one.
    again = cli("run", "flaky", "-m", "flaky", "--db", db, "--json", "--idempotency-key", "k1")
    assert json.loads(again.stdout)["execution_id"] == eid, again
    conflict = cli(
        "run", "flaky", "-m", "flaky", "--db", db, "--idempotency-key", "k1",
        "--context", '{"x": 1}',
    )  # fmt: skip
    assert conflict.returncode != 0 and "another workflow or context" in conflict.output
    long_key = cli("run", "flaky", "-m", "flaky", "--db", db, "--idempotency-key", "k" * 256)
    assert long_key.returncode != 0 and "at most 255 characters" in long_key.output

    (flaky / "broken.marker").unlink()
    # Bad inputs first: nothing changes.
    unknown = cli("executions", "rerun", eid[:8], "--task", "nope", "-m", "flaky", "--db", db)
    assert unknown.returncode == 1 and "'nope'" in unknown.output, unknown
    rerun = cli(
        "executions", "rerun", eid[:8], "--context", '{"factor": 5}', "-m", "flaky", "--db", db
    )
    assert rerun.returncode == 0, rerun
    assert "Rerunning" in rerun.stdout
    assert _wait(flaky, db, eid) == {
        "status": "completed",
        "final": {"rows": 3, "doubled": 15, "factor": 5, "loaded": True},
    }
    assert (flaky / "extract.calls").read_text() == "x"  # upstream never ran again
    shown = cli("executions", "show", eid[:8], "--db", db)
    assert shown.returncode == 0, shown
    assert "Attempts" in shown.stdout and "transform is broken" in shown.stdout
    data = json.loads(cli("executions", "show", eid[:8], "--db", db, "--json").stdout)
    attempts = [(a["task_id"], a["attempt"], a["outcome"]) for a in data["attempts"]]
    assert ("transform", 1, "failed") in attempts and ("transform", 2, "completed") in attempts
    running = cli("executions", "rerun", eid[:8], "--db", db)
    assert running.returncode == 1 and "no failed or cancelled task" in running.output

    # In bulk: two failed runs of flaky since a day ago.
    (flaky / "broken.marker").write_text("broken")
    ids = []
    for _ in range(2):
        res = cli("run", "flaky", "-m", "flaky", "--db", db, "--json")
        ids.append(json.loads(res.stdout)["execution_id"])
    (flaky / "broken.marker").unlink()
    bulk = cli(
        "executions", "rerun-failed", "--workflow", "flaky", "--since", "1d", "-m", "flaky",
        "--db", db,
    )  # fmt: skip
    assert bulk.returncode == 0, bulk
    assert bulk.stdout.split() == ids
    for rid in ids:
        assert _wait(flaky, db, rid)["status"] == "completed"


@pytest.fixture
def served(tmp_path: Path, cli: Cli, flaky: Path) -> Iterator[tuple[str, str, str]]:
    """``cloacina serve`` of the flaky module on a SQLite file: (base URL, key, db)."""
    db = f"sqlite:///{tmp_path / 'served.db'}"
    made = cli("api-keys", "create", "--db", db, "--name", "rerun-e2e", "--role", "operator")
    assert made.returncode == 0, made
    key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("CLOACINA_DB", "CLOACINA_API_KEY")}
    args = ["serve", "--db", db, "--port", str(port), "--module", "flaky.py"]
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
        deadline = time.monotonic() + 60
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


def _ended(http: httpx.Client, eid: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        doc: dict[str, object] = http.get(f"/api/v1/executions/{eid}").json()
        if doc["status"] in ("completed", "failed", "cancelled"):
            return doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.05)


def test_rerun_and_idempotency_over_http(
    cli: Cli, flaky: Path, served: tuple[str, str, str]
) -> None:
    base, key, _db = served
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        body = {"workflow": "flaky", "context": {"order": 42}}
        made = http.post("/api/v1/executions", json=body, headers={"Idempotency-Key": "o-42"})
        assert made.status_code == 201, made.text
        eid = made.json()["execution_id"]
        same = http.post("/api/v1/executions", json=body, headers={"Idempotency-Key": "o-42"})
        assert same.status_code == 200 and same.json()["execution_id"] == eid
        other = http.post(
            "/api/v1/executions",
            json={"workflow": "flaky", "context": {"order": 43}},
            headers={"Idempotency-Key": "o-42"},
        )
        assert other.status_code == 409, other.text
        assert other.json()["error"]["code"] == "idempotency_conflict"
        long_key = http.post(
            "/api/v1/executions", json=body, headers={"Idempotency-Key": "k" * 256}
        )
        assert long_key.status_code == 400 and "255" in long_key.json()["error"]["message"]
        assert _ended(http, eid)["status"] == "failed"

        (flaky / "broken.marker").unlink()
        bad = http.post(f"/api/v1/executions/{eid}/rerun", json={"tasks": ["nope"]})
        assert bad.status_code == 404, bad.text
        ok = http.post(f"/api/v1/executions/{eid}/rerun", json={"context": {"factor": 10}})
        assert ok.status_code == 202, ok.text
        done = _ended(http, eid)
        assert done["status"] == "completed"
        assert done["final_context"] == {
            "order": 42,
            "rows": 3,
            "factor": 10,
            "doubled": 30,
            "loaded": True,
        }
    admin_made = cli("api-keys", "create", "--db", _db, "--name", "auditor", "--role", "admin")
    admin = admin_made.stdout.strip().splitlines()[-1]
    audit = httpx.get(
        f"{base}/api/v1/audit",
        params={"action": "run.rerun"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    ).json()["items"]
    assert [(a["target"], a["outcome"]) for a in audit][:2] == [
        (eid, "ok"),
        (eid, audit[1]["outcome"]),
    ]
    assert "rerun-e2e" in audit[0]["actor"] and audit[1]["outcome"] != "ok"
    starts = httpx.get(
        f"{base}/api/v1/audit",
        params={"action": "run.start"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    ).json()["items"]
    # Oldest last: the run made, the same key again (the same run), the conflict, the long key.
    assert [a["target"] for a in starts[-4:]] == ["flaky", "flaky", eid, eid]
    assert [a["outcome"] == "ok" for a in starts[-4:]] == [False, False, True, True]

    # The CLI through the server: a failed run, rerun with --server.
    env = {"CLOACINA_API_KEY": key}
    (flaky / "broken.marker").write_text("broken")
    ran = cli("run", "flaky", "--server", base, "--json", "--idempotency-key", "cli-1", env=env)
    assert ran.returncode == 1, ran
    rid = json.loads(ran.stdout)["execution_id"]
    again = cli("run", "flaky", "--server", base, "--json", "--idempotency-key", "cli-1", env=env)
    assert json.loads(again.stdout)["execution_id"] == rid
    (flaky / "broken.marker").unlink()
    rerun = cli("executions", "rerun", rid[:8], "--server", base, env=env)
    assert rerun.returncode == 0, rerun
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        assert _ended(http, rid)["status"] == "completed"
    (flaky / "broken.marker").write_text("broken")
    failed = cli("run", "flaky", "--server", base, "--json", env=env)
    fid = json.loads(failed.stdout)["execution_id"]
    (flaky / "broken.marker").unlink()
    bulk = cli("executions", "rerun-failed", "--workflow", "flaky", "--server", base, env=env)
    assert bulk.returncode == 0, bulk
    assert bulk.stdout.split() == [fid]
