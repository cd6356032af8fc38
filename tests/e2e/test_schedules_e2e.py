"""``cloacina schedules`` end to end: a schedule added from the command line is fired by a
``cloacina worker`` process every second, exactly once per time; the CLI lists it with its
next times in its zone and the viewer's, shows it, pauses, resumes, updates and removes it
(audited as the local user), shows its history, and refuses bad input with the reason and
the position (nothing stored). On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
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

FLOWS = textwrap.dedent(
    """
    from cloacina import Context, task, workflow


    @workflow(name="ticker")
    class ticker:
        @task()
        def tick(context: Context) -> None:
            context.insert("seen", context["scheduled_time"])
    """
)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'runs.db'}"


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def worker(url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    (tmp_path / "flows.py").write_text(FLOWS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("CLOACINA_DB", "CLOACINA_TENANT")}
    env.update({"NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    out = (tmp_path / "worker.out").open("wb")
    err = (tmp_path / "worker.err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloacina", "worker", "--db", url, "-m", "flows"],
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


def test_schedules_from_the_command_line(
    url: str, tmp_path: Path, worker: subprocess.Popen[bytes]
) -> None:
    def cli(*args: str) -> Any:
        return run_cli(*args, "--db", url, cwd=tmp_path)

    def history(sid: str) -> list[dict[str, Any]]:
        res = cli("schedules", "history", sid, "--json", "--limit", "1000")
        assert res.returncode == 0, res
        items: list[dict[str, Any]] = json.loads(res.stdout)
        return items

    # Bad input: the reason and where; nothing stored.
    bad = cli("schedules", "add", "ticker", "0 25 * * *", "-m", "flows")
    assert bad.returncode == 2, bad
    assert "field 2 (hour) at column 3" in " ".join(bad.stderr.split()), bad
    zone = cli("schedules", "add", "ticker", "@daily", "-z", "Europe/Berln", "-m", "flows")
    assert zone.returncode == 2 and "Europe/Berlin" in zone.stderr, zone
    unknown = cli("schedules", "add", "tickr", "@daily", "-m", "flows")
    assert unknown.returncode == 2 and "ticker" in unknown.stderr, unknown
    low = cli("schedules", "add", "ticker", "@daily", "--max-catchup", "0", "-m", "flows")
    assert low.returncode == 2 and "max_catchup" in low.stderr, low
    backwards = cli(
        "schedules",
        "add",
        "ticker",
        "@daily",
        "--start",
        "2027-01-02T00:00:00",
        "--end",
        "2027-01-01T00:00:00",
        "-m",
        "flows",
    )
    assert backwards.returncode == 2 and "after its end" in backwards.stderr, backwards
    empty = cli("schedules", "list", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == [], empty

    added = cli(
        "schedules",
        "add",
        "ticker",
        "* * * * * *",
        "--name",
        "every-second",
        "--catchup",
        "all",
        "--context",
        '{"team": "data"}',
        "-m",
        "flows",
        "--json",
    )
    assert added.returncode == 0, added
    sid = json.loads(added.stdout)["id"]

    fires = wait_for(lambda: len(h := history(sid)) >= 3 and h, "three fires")
    times = sorted(f["scheduled_for"] for f in fires)
    assert len(set(times)) == len(times), "a time fired twice"

    table = run_cli("schedules", "list", "--zone", "America/New_York", "--db", url, cwd=tmp_path)
    assert table.returncode == 0, table
    assert "every-second" in table.stdout and "active" in table.stdout
    assert "UTC" in table.stdout and ("EST" in table.stdout or "EDT" in table.stdout)

    shown = cli("schedules", "show", "every-second")
    assert shown.returncode == 0, shown
    assert "Next times" in shown.stdout and '"team": "data"' in shown.stdout

    paused = cli("schedules", "pause", "every-second")
    assert paused.returncode == 0 and "Paused schedule every-second" in paused.stdout, paused
    time.sleep(0.5)
    count = len(history(sid))
    time.sleep(2.0)
    assert len(history(sid)) == count, "a paused schedule fired"
    listed = json.loads(cli("schedules", "list", "--json").stdout)
    assert listed[0]["enabled"] is False and listed[0]["next_fire_at"] is None

    resumed = cli("schedules", "resume", sid[:8])
    assert resumed.returncode == 0, resumed
    # Catch-up "all": the seconds missed while paused fire too, each once.
    wait_for(lambda: len(history(sid)) >= count + 3, "fires after the resume")

    updated = cli("schedules", "update", sid, "--cron", "0 0 1 1 *", "-z", "Asia/Kathmandu")
    assert updated.returncode == 0 and "Asia/Kathmandu" in updated.stdout, updated
    doc = json.loads(cli("schedules", "show", sid, "--json").stdout)
    assert doc["cron"] == "0 0 1 1 *" and doc["next_times"][0].endswith("+05:45")

    text = cli("schedules", "history", sid)
    assert text.returncode == 0 and "Fires of every-second" in text.stdout, text

    removed = cli("schedules", "remove", "every-second")
    assert removed.returncode == 0, removed
    gone = cli("schedules", "show", sid)
    assert gone.returncode == 2 and "no schedule" in gone.stderr, gone

    # Every run it started completed, with its scheduled time in its context.
    runs = json.loads(cli("executions", "list", "--json", "--limit", "500").stdout)
    assert runs and all(r["workflow"] == "ticker" for r in runs)

    audit = cli("audit", "list", "--json")
    assert audit.returncode == 0, audit
    page = json.loads(audit.stdout)
    entries = page["items"] if isinstance(page, dict) else page
    actions = {e["action"] for e in entries if e["target"] == sid}
    assert {"schedule.add", "schedule.pause", "schedule.resume", "schedule.update"} <= actions
    assert "schedule.remove" in actions
