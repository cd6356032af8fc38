"""``cloacina backfill`` and ``cloacina backfills`` end to end, on SQLite and PostgreSQL: a
followed backfill runs each time once and exits 0 (1 when a run failed); a detached one is
made by a ``cloacina worker`` process, listed, shown, paused, resumed and cancelled (audited
as the local user); bad input exits 2 and stores nothing."""

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

JOBS = textwrap.dedent(
    """
    import time
    from pathlib import Path

    from cloacina import Context, task, workflow

    HERE = Path(__file__).parent


    @workflow(name="hourly")
    class hourly:
        @task()
        def work(context: Context) -> None:
            with (HERE / "seen.txt").open("a") as out:
                out.write(context["scheduled_time"] + "\\n")
            deadline = time.monotonic() + 60
            while (HERE / "hold").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if context["scheduled_time"] == (HERE / "fail_at").read_text().strip():
                raise ValueError("no data for that hour")
    """
)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    (tmp_path / "jobs.py").write_text(JOBS, encoding="utf-8")
    (tmp_path / "fail_at").write_text("never")
    return tmp_path


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def start_worker(url: str, jobs: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k not in ("CLOACINA_DB", "CLOACINA_TENANT")}
        env.update({"NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
        log = jobs / f"worker{len(procs)}.out"
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloacina", "worker", "--db", url, "-m", "jobs"],
            cwd=jobs,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        wait_for(lambda: "started" in log.read_text(), "the worker")
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def seen(jobs: Path) -> list[str]:
    path = jobs / "seen.txt"
    return sorted(path.read_text().split()) if path.exists() else []


def hours(day: str, n: int) -> list[str]:
    return [f"{day}T{h:02d}:00:00+00:00" for h in range(n)]


def test_a_followed_backfill(url: str, jobs: Path) -> None:
    def cli(*args: str) -> Any:
        return run_cli(*args, "--db", url, cwd=jobs, timeout=120)

    res = cli(
        "backfill",
        "hourly",
        "--from",
        "2026-01-01T00:00",
        "--to",
        "2026-01-01T05:00",
        "--cron",
        "@hourly",
        "-m",
        "jobs",
        "--max-parallel",
        "2",
    )
    assert res.returncode == 0, res
    assert "6 time(s) of '@hourly' (UTC)" in res.stdout
    assert "completed: 6 completed, 0 failed" in res.stdout
    assert seen(jobs) == hours("2026-01-01", 6)

    # Again over a longer range: only the missing times run; --json prints the backfill.
    (jobs / "fail_at").write_text("2026-01-01T07:00:00+00:00")
    res = cli(
        "backfill",
        "hourly",
        "--from",
        "2026-01-01T00:00",
        "--to",
        "2026-01-01T08:00",
        "--cron",
        "@hourly",
        "-m",
        "jobs",
        "--json",
    )
    assert res.returncode == 1, res  # one run failed
    doc = json.loads(res.stdout)
    assert (doc["status"], doc["total"], doc["created"], doc["skipped"]) == ("failed", 9, 3, 6)
    assert (doc["completed"], doc["failed"]) == (2, 1)
    assert seen(jobs) == sorted(hours("2026-01-01", 6) + hours("2026-01-01", 9)[6:])

    # --all runs every time again.
    (jobs / "seen.txt").unlink()
    res = cli(
        "backfill",
        "hourly",
        "--from",
        "2026-01-01T00:00",
        "--to",
        "2026-01-01T02:00",
        "--cron",
        "@hourly",
        "-m",
        "jobs",
        "--all",
    )
    assert res.returncode == 0, res
    assert seen(jobs) == hours("2026-01-01", 3)

    listed = cli("backfills", "list", "--json")
    assert listed.returncode == 0, listed
    items = json.loads(listed.stdout)["items"]
    assert [(b["status"], b["total"]) for b in items] == [
        ("completed", 3),
        ("failed", 9),
        ("completed", 6),
    ]
    table = cli("backfills", "list")
    assert table.returncode == 0 and "hourly" in table.stdout and "9/9" in table.stdout, table


def test_a_detached_backfill_made_by_a_worker_and_controlled(
    url: str, jobs: Path, start_worker: Callable[[], subprocess.Popen[bytes]]
) -> None:
    def cli(*args: str) -> Any:
        return run_cli(*args, "--db", url, cwd=jobs, timeout=60)

    def show(ident: str) -> dict[str, Any]:
        res = cli("backfills", "show", ident, "--json")
        assert res.returncode == 0, res
        doc: dict[str, Any] = json.loads(res.stdout)
        return doc

    hold = jobs / "hold"
    hold.write_text("")  # runs wait while it exists
    res = cli(
        "backfill",
        "hourly",
        "--from",
        "2026-02-01",
        "--to",
        "2026-02-01T23:00",
        "--cron",
        "0 * * * *",
        "-m",
        "jobs",
        "--detach",
        "--max-parallel",
        "2",
        "--json",
    )
    assert res.returncode == 0, res
    bid = json.loads(res.stdout)["id"]
    short = bid[:8]
    assert show(short)["created"] == 0  # nobody executes tasks yet
    start_worker()
    wait_for(lambda: show(bid)["running"] == 2, "the worker to make two runs")

    paused = cli("backfills", "pause", short)
    assert paused.returncode == 0 and f"Paused backfill {bid}" in paused.stdout, paused
    hold.unlink()
    wait_for(lambda: show(bid)["completed"] == 2, "its two runs to end")
    time.sleep(1.5)
    now = show(bid)
    assert (now["created"], now["running"], now["status"]) == (2, 0, "paused")
    text = cli("backfills", "show", short)
    assert text.returncode == 0 and "paused" in text.stdout and "2/24" in text.stdout, text

    hold.write_text("")
    resumed = cli("backfills", "resume", short)
    assert resumed.returncode == 0 and "Resumed" in resumed.stdout, resumed
    wait_for(lambda: show(bid)["running"] == 2, "two new runs after the resume")
    cancelled = cli("backfills", "cancel", short)
    assert cancelled.returncode == 0, cancelled
    assert "Cancelled backfill" in cancelled.stdout and "2 unfinished run(s)" in cancelled.stdout
    hold.unlink()
    wait_for(lambda: show(bid)["running"] == 0, "the cancelled runs to end")
    time.sleep(1.0)
    done = show(bid)
    assert (done["status"], done["created"], done["completed"], done["cancelled"]) == (
        "cancelled",
        4,
        2,
        2,
    )
    assert len(seen(jobs)) == len(set(seen(jobs))) == 4

    again = cli("backfills", "resume", short)
    assert again.returncode == 1 and "cancelled" in again.stderr, again
    missing = cli("backfills", "show", "nope")
    assert missing.returncode == 2 and "no backfill" in missing.stderr, missing

    audit = cli("audit", "list", "--json")
    assert audit.returncode == 0, audit
    actions = [
        (a["action"], a["outcome"])
        for a in json.loads(audit.stdout)["items"]
        if a["action"].startswith("backfill.")
    ]
    assert ("backfill.create", "ok") in actions
    assert ("backfill.pause", "ok") in actions and ("backfill.cancel", "ok") in actions
    assert any(a == "backfill.resume" and o != "ok" for a, o in actions)


def test_bad_backfills_exit_2_and_store_nothing(url: str, jobs: Path) -> None:
    def cli(*args: str) -> Any:
        return run_cli(*args, "--db", url, cwd=jobs, timeout=60)

    base = ["backfill", "hourly", "-m", "jobs", "--detach"]
    cases = [
        (["--from", "2026-01-02", "--to", "2026-01-01", "--cron", "@hourly"], "after its end"),
        (["--from", "2026-01-01", "--to", "2026-12-01", "--cron", "* * * * *"], "--force"),
        (["--from", "2026-01-01", "--to", "2026-01-02", "--cron", "0 24 * * *"], "hour"),
        (["--from", "2026-01-01", "--to", "2026-01-02"], "declares no schedule"),
        (
            [
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-02",
                "--cron",
                "@daily",
                "--timezone",
                "Europe/Berln",
            ],
            "Europe/Berlin",
        ),
    ]
    for extra, text in cases:
        res = cli(*base, *extra)
        assert res.returncode == 2 and text in res.stderr, res
    res = cli(
        "backfill",
        "hourli",
        "-m",
        "jobs",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-02",
        "--cron",
        "@daily",
    )
    assert res.returncode == 2 and "'hourly'" in res.stderr, res
    listed = cli("backfills", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["items"] == [], listed
