"""Exactly once (DESIGN.md §10): one run per (schedule, scheduled time), however many runners
share the database — runners in threads racing on one FakeClock (SQLite and PostgreSQL),
worker processes firing an every-second schedule in real time (on PostgreSQL, and on one
SQLite file) with one of them SIGKILLed, and an idle runner with 1,000 schedules that stays idle."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.model.cron import CronSpec
from cloacina.testing import FakeClock

pytestmark = pytest.mark.timeout(180)

WORKER_SCRIPT = Path(__file__).with_name("worker_proc.py")
T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


def scheduled_runs(runner: DefaultRunner, workflow_name: str) -> list[float]:
    """``scheduled_for`` of every run of the workflow (from the runs themselves)."""
    rows = runner.store._fetchall(
        "SELECT scheduled_for FROM workflow_executions WHERE workflow_name = ?",
        (workflow_name,),
    )
    return sorted(float(r[0]) for r in rows)


def test_runners_racing_on_one_clock_fire_each_time_once(
    db_url: str, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf_name = name("race")

    @workflow(name=wf_name)
    class Race:
        @task()
        def work(context: Context) -> None:
            return None

    clock = FakeClock(T0)
    runners = [
        DefaultRunner(db_url, clock=clock, poll_interval=0.05, shutdown_grace=5.0) for _ in range(3)
    ]
    try:
        sid = runners[0].add_schedule(wf_name, "*/5 * * * *", catchup="all", max_catchup=1000)
        ids = [runners[i % 3].add_schedule(wf_name, "* * * * *", catchup="all") for i in range(4)]
        steps = 40
        for step in range(1, steps + 1):
            clock.advance(timedelta(minutes=1))  # every runner wakes and races for each time
            until(
                lambda step=step: all(
                    len(runners[0].schedule_history(i, limit=1000)) == step for i in ids
                ),
                timeout=20,
                what=f"minute {step}",
            )
        until(
            lambda: len(runners[0].schedule_history(sid, limit=1000)) == steps // 5,
            what="the five-minute schedule",
        )
        runs = scheduled_runs(runners[0], wf_name)
        assert len(runs) == 4 * steps + steps // 5
        counts = Counter(runs)
        minutes = [(T0 + timedelta(minutes=m)).timestamp() for m in range(1, steps + 1)]
        for m in minutes:
            assert counts[m] == 4 + (1 if int(m) % 300 == 0 else 0), m
        # The runs are those of the fire rows, one each.
        for i in [*ids, sid]:
            fires = runners[0].schedule_history(i, limit=1000)
            assert len({f.execution_id for f in fires}) == len(fires)
    finally:
        for runner in runners:
            runner.shutdown(wait=False)


MODULE = '''\
"""The workflow of the real-time schedule test."""

from cloacina import Context, task, workflow


@workflow(name="WF_NAME")
class EverySecond:
    @task
    def tick(context: Context) -> None:
        return None
'''


@pytest.mark.timeout(240)
def test_worker_processes_fire_an_every_second_schedule_once_per_second_through_a_kill(
    db_url: str, tmp_path: Path
) -> None:
    """Three worker processes on one PostgreSQL database, or on one SQLite file."""
    url = db_url
    module = f"secwf_{uuid.uuid4().hex[:10]}"
    wf_name = f"every_second_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(MODULE.replace("WF_NAME", wf_name))
    sys.path.insert(0, str(tmp_path))
    procs: list[subprocess.Popen[bytes]] = []

    def start(n: int) -> subprocess.Popen[bytes]:
        out = tmp_path / f"w{n}.out"
        with out.open("wb") as out_f, (tmp_path / f"w{n}.err").open("wb") as err_f:
            proc = subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), url, str(tmp_path), module, "{}"],
                stdout=out_f,
                stderr=err_f,
            )
        procs.append(proc)
        deadline = time.monotonic() + 30
        while not out.read_text().startswith("ready "):
            assert proc.poll() is None, (tmp_path / f"w{n}.err").read_text()
            assert time.monotonic() < deadline, "the worker was not ready in 30s"
            time.sleep(0.05)
        return proc

    try:
        __import__(module)
        for n in range(3):
            start(n)
        client = DefaultRunner(url, execute_tasks=False)
        try:
            sid = client.add_schedule(wf_name, "* * * * * *", catchup="all", max_catchup=100)
            added = client.get_schedule(sid).next_fire_at
            assert added is not None
            time.sleep(4)
            procs[0].send_signal(signal.SIGKILL)  # one worker dies mid-stream
            procs[0].wait()
            time.sleep(4)
            client.pause_schedule(sid)
            paused = client.store.get_schedule(sid)
            assert paused is not None
            time.sleep(1.5)  # runs started just before the pause are created by now
            fires = client.schedule_history(sid, limit=1000)
            runs = scheduled_runs(client, wf_name)
        finally:
            client.shutdown()
        times = sorted(f.scheduled_for.timestamp() for f in fires)
        assert times == runs, "every fire has its run, and every run its fire"
        assert len(set(times)) == len(times), "a time fired twice"
        # No gap: every second from the first time to the last, as the expression says.
        spec = CronSpec.parse("* * * * * *")
        assert times[0] == added.timestamp()
        assert times == list(spec.times_between(times[0] - 1, times[-1]))
        assert len(times) >= 7
        lateness = sorted(f.fired_at.timestamp() - f.scheduled_for.timestamp() for f in fires)
        # Late only around the kill (the row a dead worker held is free at once, its
        # transaction rolled back); most fires come within a few tens of ms.
        assert lateness[len(lateness) // 2] < 0.25, lateness
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)


def test_an_idle_runner_with_a_thousand_schedules_stays_idle(
    sqlite_url: str, name: Callable[[str], str]
) -> None:
    wf_name = name("idle")

    @workflow(name=wf_name)
    class Idle:
        @task()
        def work(context: Context) -> None:
            return None

    client = DefaultRunner(sqlite_url, execute_tasks=False)
    try:
        for i in range(1000):  # yearly, on many different days: none due for months
            client.add_schedule(wf_name, f"{i % 60} {i % 24} {1 + i % 28} {1 + i % 12} *")
    finally:
        client.shutdown()
    runner = DefaultRunner(sqlite_url)  # the default settings: as a user would run it
    try:
        time.sleep(1.0)  # started
        poller = runner._schedule_poller
        assert poller is not None
        passes = poller.passes
        cpu = time.process_time()
        wall = time.monotonic()
        time.sleep(5.0)
        used = (time.process_time() - cpu) / (time.monotonic() - wall)
        # The whole runner (engine polls, heartbeats, schedules), not just the schedules.
        assert used < 0.01, f"an idle runner used {used:.2%} of a core"
        assert poller.passes - passes <= 7  # about one look a second, never a poll storm
    finally:
        runner.shutdown()
