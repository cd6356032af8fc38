"""Schedules under load: the targets of issue 12, one JSON line per scenario.

    python bench/schedules.py every-second --seconds 120      # SQLite: lateness, missed, doubled
    python bench/schedules.py idle --schedules 1000 --seconds 10   # CPU of an idle runner
    python bench/schedules.py pg-kill --url postgresql://... --workers 3 --schedules 100 \\
        --seconds 120 --kill-every 10   # SIGKILL a worker every 10 s (in a scratch database
                                        # made beside --url's and dropped afterwards)

Targets: every-second p99 lateness (fired at minus scheduled for) <= 50 ms with zero missed
and zero doubled; pg-kill zero duplicates and zero missed times (each schedule's fires
checked against its expression's own times between its first and last fire); idle under
1% of a core.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.model.cron import CronSpec

EVERY_SECOND = "* * * * * *"


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _check(fires: list[tuple[float, float]], expression: str) -> dict[str, Any]:
    """Missed and doubled times of one schedule's ``(scheduled_for, fired_at)`` fires."""
    times = [t for t, _ in fires]
    counts = Counter(times)
    if not times:
        return {"fires": 0, "missed": 0, "doubled": 0, "lateness": []}
    spec = CronSpec.parse(expression)
    expected = list(spec.times_between(min(times) - 1, max(times)))
    return {
        "fires": len(times),
        "missed": len(set(expected) - set(times)),
        "doubled": sum(c - 1 for c in counts.values() if c > 1),
        "lateness": [f - t for t, f in fires],
    }


def every_second(seconds: float) -> dict[str, Any]:
    name = f"bench_tick_{uuid.uuid4().hex[:6]}"

    @workflow(name=name)
    class Tick:
        @task()
        def tick(context: Context) -> None:
            return None

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        with DefaultRunner(url) as runner:
            sid = runner.add_schedule(name, EVERY_SECOND, catchup="all")
            time.sleep(seconds)
            runner.pause_schedule(sid)
            fires = [
                (f.scheduled_for.timestamp(), f.fired_at.timestamp())
                for f in runner.schedule_history(sid, limit=100000)
            ]
    found = _check(fires, EVERY_SECOND)
    late = found.pop("lateness")
    return {
        "scenario": "every-second",
        "backend": "sqlite",
        "seconds": seconds,
        **found,
        "lateness_p50_ms": round(_percentile(late, 0.5) * 1000, 2),
        "lateness_p99_ms": round(_percentile(late, 0.99) * 1000, 2),
        "lateness_max_ms": round(max(late, default=float("nan")) * 1000, 2),
    }


def idle(schedules: int, seconds: float) -> dict[str, Any]:
    name = f"bench_idle_{uuid.uuid4().hex[:6]}"

    @workflow(name=name)
    class Idle:
        @task()
        def work(context: Context) -> None:
            return None

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        with DefaultRunner(url, execute_tasks=False) as client:
            for i in range(schedules):  # yearly, spread over the year: none due for a while
                client.add_schedule(name, f"{i % 60} {i % 24} {1 + i % 28} {1 + i % 12} *")
        with DefaultRunner(url) as runner:
            time.sleep(1.0)
            cpu, wall = time.process_time(), time.monotonic()
            time.sleep(seconds)
            used = (time.process_time() - cpu) / (time.monotonic() - wall)
            passes = runner._schedule_poller.passes if runner._schedule_poller else 0
    return {
        "scenario": "idle",
        "schedules": schedules,
        "seconds": seconds,
        "cpu_share_pct": round(used * 100, 3),
        "schedule_passes": passes,
    }


MODULE = textwrap.dedent(
    """
    from cloacina import Context, task, workflow


    @workflow(name="WF")
    class Tick:
        @task()
        def tick(context: Context) -> None:
            return None
    """
)


def _scratch_database(admin_url: str) -> tuple[str, str]:
    """A fresh database beside ``admin_url``'s (its URL and name): the bench writes nowhere
    else, and drops it afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"cloacina_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_kill(
    admin_url: str, workers: int, schedules: int, seconds: float, kill_every: float
) -> dict[str, Any]:
    url, database = _scratch_database(admin_url)
    try:
        return _pg_kill(url, workers, schedules, seconds, kill_every)
    finally:
        _drop_database(admin_url, database)


def _pg_kill(
    url: str, workers: int, schedules: int, seconds: float, kill_every: float
) -> dict[str, Any]:
    name = f"bench_pg_{uuid.uuid4().hex[:6]}"
    module = f"bench_mod_{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"{module}.py").write_text(MODULE.replace("WF", name))
        sys.path.insert(0, tmp)
        __import__(module)
        env = {**os.environ, "NO_COLOR": "1"}

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "cloacina", "worker", "--db", url, "-m", module],
                cwd=tmp,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        procs = [start() for _ in range(workers)]
        kills = 0
        with DefaultRunner(url, execute_tasks=False) as client:
            time.sleep(3.0)  # the workers start
            ids = [client.add_schedule(name, EVERY_SECOND, catchup="all") for _ in range(schedules)]
            end = time.monotonic() + seconds
            next_kill = time.monotonic() + kill_every
            while time.monotonic() < end:
                time.sleep(0.2)
                if time.monotonic() >= next_kill:
                    victim = random.randrange(len(procs))
                    procs[victim].send_signal(signal.SIGKILL)
                    procs[victim].wait()
                    procs[victim] = start()
                    kills += 1
                    next_kill += kill_every
            for sid in ids:
                client.pause_schedule(sid)
            time.sleep(2.0)
            results = []
            for sid in ids:
                fires = [
                    (f.scheduled_for.timestamp(), f.fired_at.timestamp())
                    for f in client.schedule_history(sid, limit=100000)
                ]
                results.append(_check(fires, EVERY_SECOND))
            rows = client.store._fetchall(
                "SELECT schedule_id, scheduled_for, count(*) FROM workflow_executions"
                " WHERE workflow_name = ? GROUP BY schedule_id, scheduled_for HAVING count(*) > 1",
                (name,),
            )
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        sys.path.remove(tmp)
    late = [x for r in results for x in r.pop("lateness")]
    return {
        "scenario": "pg-kill",
        "workers": workers,
        "schedules": schedules,
        "seconds": seconds,
        "kills": kills,
        "fires": sum(r["fires"] for r in results),
        "missed": sum(r["missed"] for r in results),
        "doubled_fires": sum(r["doubled"] for r in results),
        "doubled_runs": len(rows),
        "lateness_p50_ms": round(_percentile(late, 0.5) * 1000, 2),
        "lateness_p99_ms": round(_percentile(late, 0.99) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["every-second", "idle", "pg-kill"])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--schedules", type=int, default=None)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=10.0)
    parser.add_argument("--url", default=os.environ.get("CLOACINA_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if args.scenario == "every-second":
        out = every_second(args.seconds)
    elif args.scenario == "idle":
        out = idle(args.schedules or 1000, args.seconds)
    else:
        if not args.url:
            parser.error("pg-kill needs --url postgresql://... (or $CLOACINA_TEST_POSTGRES_URL)")
        out = pg_kill(args.url, args.workers, args.schedules or 100, args.seconds, args.kill_every)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
