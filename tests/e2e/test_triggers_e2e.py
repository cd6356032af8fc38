"""``cloacina triggers`` end to end: a ``cloacina worker`` whose module declares a trigger
watching a directory (and one that always fails) records and polls them; the CLI lists them,
pauses and resumes one (audited as the local user), and names the nearest trigger for a
wrong name. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import run_cli

pytestmark = pytest.mark.timeout(180)

WATCHERS = textwrap.dedent(
    """
    from pathlib import Path

    from cloacina import Context, task, trigger, workflow

    HERE = Path(__file__).parent


    @workflow(name="ingest")
    class ingest:
        @task()
        def load(context: Context) -> None:
            context.insert("loaded", context["file"])


    @trigger(workflow="ingest", poll_interval=0.2)
    def new_files():
        for found in sorted((HERE / "inbox").glob("*.csv")):
            found.rename(HERE / "done" / found.name)
            return {"file": found.name}
        return None


    @trigger(workflow="ingest", poll_interval=0.2, name="broken_feed")
    def broken():
        raise RuntimeError("the feed is down")
    """
)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def worker(url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    (tmp_path / "watchers.py").write_text(WATCHERS, encoding="utf-8")
    (tmp_path / "inbox").mkdir()
    (tmp_path / "done").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CLOACINA_DB", "CLOACINA_TENANT")}
    env.update({"NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    out = (tmp_path / "worker.out").open("wb")
    err = (tmp_path / "worker.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloacina", "worker", "--db", url, "-m", "watchers"],
        cwd=tmp_path,
        env=env,
        stdout=out,
        stderr=err,
    )
    try:
        wait_for(lambda: "started" in (tmp_path / "worker.out").read_text(), "the worker")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        out.close()
        err.close()


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_triggers_from_the_command_line(
    url: str, tmp_path: Path, worker: subprocess.Popen[bytes]
) -> None:
    def cli(*args: str) -> Any:
        return run_cli(*args, "--db", url, cwd=tmp_path)

    def listed() -> dict[str, dict[str, Any]]:
        res = cli("triggers", "list", "--json")
        assert res.returncode == 0, res
        return {t["name"]: t for t in json.loads(res.stdout)}

    def runs() -> list[dict[str, Any]]:
        res = cli("executions", "list", "--json")
        assert res.returncode == 0, res
        items: list[dict[str, Any]] = json.loads(res.stdout)
        return items

    triggers = listed()
    assert set(triggers) == {"new_files", "broken_feed"}
    assert triggers["new_files"]["workflow"] == "ingest"
    assert triggers["new_files"]["poll_interval"] == 0.2
    assert triggers["new_files"]["source"] == "declared"
    failing = wait_for(
        lambda: (t := listed()["broken_feed"])["failures"] >= 1 and t, "a recorded failure"
    )
    assert "RuntimeError: the feed is down" in failing["last_error"]
    assert "Traceback" in failing["last_error"]

    (tmp_path / "inbox" / "a.csv").write_text("1,2\n")
    wait_for(lambda: len(runs()) == 1 and runs()[0]["status"] == "completed", "the first run")
    assert not (tmp_path / "inbox" / "a.csv").exists()
    assert listed()["new_files"]["last_fired_at"] is not None

    paused = cli("triggers", "pause", "new_files")
    assert paused.returncode == 0 and "Paused trigger new_files" in paused.stdout, paused
    assert listed()["new_files"]["enabled"] is False
    (tmp_path / "inbox" / "b.csv").write_text("3,4\n")
    time.sleep(1.5)
    assert (tmp_path / "inbox" / "b.csv").exists(), "a paused trigger was polled"
    assert len(runs()) == 1

    table = cli("triggers", "list")
    assert table.returncode == 0, table
    assert "paused" in table.stdout and "failing" in table.stdout
    assert "RuntimeError: the feed is down" in table.stdout

    resumed = cli("triggers", "resume", "new_files")
    assert resumed.returncode == 0 and "Resumed trigger new_files" in resumed.stdout, resumed
    wait_for(lambda: len(runs()) == 2, "a run once resumed")
    assert not (tmp_path / "inbox" / "b.csv").exists()

    wrong = cli("triggers", "pause", "new_file")
    assert wrong.returncode == 2, wrong
    assert "no trigger named 'new_file'" in wrong.stderr
    assert "did you mean 'new_files'" in wrong.stderr

    audit = cli("audit", "list", "--json")
    assert audit.returncode == 0, audit
    actions = [
        (a["action"], a["target"], a["outcome"])
        for a in json.loads(audit.stdout)["items"]
        if a["action"].startswith("trigger.")
    ]
    assert ("trigger.pause", "new_files", "ok") in actions
    assert ("trigger.resume", "new_files", "ok") in actions
    assert any(a[0] == "trigger.pause" and a[1] == "new_file" and a[2] != "ok" for a in actions)

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    # Its triggers stay recorded, once each, after the worker stopped.
    assert len(listed()) == 2
