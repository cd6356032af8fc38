"""pg-scale: the fanout workload on PostgreSQL with 1, 2 and 4 worker processes.

    python bench/pg_scale.py                        # W = 1, 2, 4; then cloaca and DBOS
    python bench/pg_scale.py --workers 1,2 --n 200 --no-peers
    python bench/pg_scale.py --client-poll 0.01     # a client that polls every 10 ms
    python bench/pg_scale.py --profile bench/out/pg-profile   # statements + cProfile
    python bench/run.py pg-scale                    # the same, from the benchmark runner

For every W (``--workers``, default 1,2,4), on a fresh database (``CREATE DATABASE``,
dropped at the end) of the PostgreSQL server ``--pg`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, the maintenance database):

1. W worker processes start (``python bench/pg_scale.py --serve URL``): each defines
   bench/workloads.py's fanout workflow (``root -> 10 leaves -> join``, 12 tasks, the
   peers' task bodies) as an embedded workflow and runs ``cloacina.worker.serve(url,
   max_concurrent_tasks=8)``. The bench waits for every worker's ready file and for W
   rows in ``store.list_workers()``.
2. This process is the client: one ``DefaultRunner(url, execute_tasks=False)`` (submit
   only; it runs nothing), 8 threads. Warm-up: one run per thread, not timed. Then
   ``pg_stat_database`` is read twice ``--idle`` seconds apart (the background rate of
   idle workers: polls, heartbeats), and the N runs (``--n``, default 400) are taken by the
   8 threads, each doing ``schedule_workflow`` + ``wait`` and checking the final context.
   Wall time runs from the first submit to the last completion: tasks/s = 12 N / wall.
3. ``pg_stat_database`` is read again once the counters have settled (the server folds a
   backend's statistics in up to ~1 s late: the read is repeated until it stops growing
   faster than the idle rate). ``tx_per_task`` = committed transactions (``xact_commit``;
   reads in autocommit count as committed transactions too) during the run, minus the idle
   rate over the settling time outside the run, over 12 N; ``tx_per_task_gross`` without
   that correction; ``rollbacks_per_task`` from ``xact_rollback``.
4. Each worker's peak RSS (``VmHWM``) is read, then the workers get SIGTERM (graceful
   stop) and the database is dropped.

One JSON line per W, then the peers on the same server, each on a fresh database and as
single processes (cloaca 0.3.1: ``/tmp/cloaca-peer/bin/python <peers>/cloaca/workloads.py
fanout --db postgres://.../DB --n 80``; DBOS 3.4.0 likewise with ``postgresql://``), with
the transactions per task of their whole process (schema creation included), one JSON
line each; then a table: tasks/s per W, the ratios 2w/1w and 4w/1w, and the targets of
shared/BENCHMARKS.md (>= 2,000 tasks/s with 2 workers; 2 workers >= 1.6x one).

``--profile DIR``: every worker counts the SQL statements it sends (psycopg's
``Cursor.execute``/``executemany``) and the time spent in them (a round trip to the server
each), and runs under cProfile in all its threads; each writes ``DIR/w<W>-<pid>.json`` and
``.pstats`` when it stops, and the bench prints statements and database time per task and
the top functions. Profiling slows the workers down: do not quote its tasks/s.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import workloads  # noqa: E402  (bench/workloads.py, next to this file)

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_WORKERS = (1, 2, 4)
DEFAULT_N = 400
PEER_N = 80
THREADS = workloads.FANOUT_THREADS  # 8, as the peers
TASKS_PER_RUN = workloads.FANOUT_WIDTH + 2  # 12
MAX_CONCURRENT_TASKS = workloads.MAX_CONCURRENT_TASKS  # 8 per worker process
TARGET_2W_TASKS_PER_S = 2_000.0
TARGET_2W_RATIO = 1.6
READY_TIMEOUT = 60.0
RUN_TIMEOUT = 300.0  # one run's wait, generous
PEERS = ("cloaca", "dbos")
PEER_SCHEME = {"cloaca": "postgres", "dbos": "postgresql"}
PEER_LABEL = {"cloaca": "cloaca-0.3.1", "dbos": "dbos-3.4.0"}
CLOACA_DB = "cloacina"  # the only database cloaca 0.3.1 connects to
PROFILE_ENV = "CLOACINA_PG_SCALE_PROFILE"  # set for the workers: where to write profiles
TASK_MS_ENV = "CLOACINA_PG_SCALE_TASK_MS"  # set for the workers: each task sleeps this long
STATS_COLS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted")


# ---------------------------------------------------------------------------------------------
# The worker process (python bench/pg_scale.py --serve URL --ready FILE)
# ---------------------------------------------------------------------------------------------


class SqlCounter:
    """Counts the statements this process sends through psycopg, and the time in them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_sql: dict[str, list[float]] = {}  # first words of the SQL -> [count, seconds]

    def install(self) -> None:
        import psycopg

        counter = self

        def wrap(real: Any) -> Any:
            def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
                t = time.perf_counter()
                try:
                    return real(self, query, *args, **kwargs)
                finally:
                    counter.add(query, time.perf_counter() - t)

            return counted

        for name in ("execute", "executemany"):
            setattr(psycopg.Cursor, name, wrap(getattr(psycopg.Cursor, name)))

    def add(self, query: Any, seconds: float) -> None:
        text = query if isinstance(query, str) else str(getattr(query, "text", query))
        key = " ".join(text.split())[:70]
        with self.lock:
            entry = self.by_sql.setdefault(key, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds


def serve_worker(url: str, ready: Path) -> int:
    """One worker process: the fanout workflow, embedded, and ``cloacina.worker.serve``."""
    from cloacina.worker import serve

    workloads.define_fanout(task_ms=float(os.environ.get(TASK_MS_ENV) or 0))
    out_dir = os.environ.get(PROFILE_ENV)
    counter: SqlCounter | None = None
    profiles: list[cProfile.Profile] = []
    if out_dir:
        counter = SqlCounter()
        counter.install()

        def start_profile(frame: Any, event: str, arg: Any) -> None:
            prof = cProfile.Profile()
            profiles.append(prof)
            prof.enable()  # replaces this hook for the thread

        threading.setprofile(start_profile)
        main_prof = cProfile.Profile()
        profiles.append(main_prof)
        main_prof.enable()

    def on_ready(runner: Any) -> None:
        ready.write_text(runner.worker_id)

    code = serve(url, on_ready=on_ready, max_concurrent_tasks=MAX_CONCURRENT_TASKS)
    if out_dir and counter is not None:
        threading.setprofile(None)  # type: ignore[arg-type]
        for prof in profiles:
            prof.disable()
        base = Path(out_dir) / f"{ready.stem}-{os.getpid()}"
        stats = [p for p in profiles if p.getstats()]
        if stats:
            merged = pstats.Stats(stats[0])
            for p in stats[1:]:
                merged.add(p)
            merged.dump_stats(str(base.with_suffix(".pstats")))
        base.with_suffix(".json").write_text(json.dumps({"sql": counter.by_sql}))
    return code


# ---------------------------------------------------------------------------------------------
# The server: databases and their statistics
# ---------------------------------------------------------------------------------------------


def with_database(url: str, name: str, scheme: str | None = None) -> str:
    """``url`` with its database (the path) replaced by ``name`` (and its scheme)."""
    from sqlalchemy.engine import make_url

    u = make_url(url).set(database=name)
    text = u.render_as_string(hide_password=False)
    if scheme:
        text = scheme + text[text.index("://") :]
    return text


def libpq(url: str) -> str:
    """A URL psycopg takes (no SQLAlchemy driver suffix)."""
    head, rest = url.split("://", 1)
    return "postgresql://" + rest if head.startswith("postgres") else url


class Server:
    """An autocommit connection to the maintenance database: creates and drops databases,
    reads ``pg_stat_database`` (its own reads count in the maintenance database, not in the
    databases measured)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.conn = psycopg.connect(libpq(url), autocommit=True)

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def database(self, name: str) -> Iterator[str]:
        self.conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            self.conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stats(self, name: str) -> dict[str, float]:
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute(
            f"SELECT {', '.join(STATS_COLS)} FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
        out = {c: float(v or 0) for c, v in zip(STATS_COLS, row or (), strict=False)}
        out["t"] = time.perf_counter()
        return out

    def settled(self, name: str, idle_rate: float, first_wait: float = 1.2) -> dict[str, float]:
        """Stats once the backends' pending counts are in: re-read until the commits grow no
        faster than the idle background (at most ~5 s)."""
        time.sleep(first_wait)
        prev = self.stats(name)
        for _ in range(8):
            time.sleep(0.5)
            cur = self.stats(name)
            grew = cur["xact_commit"] - prev["xact_commit"]
            if grew <= idle_rate * (cur["t"] - prev["t"]) * 2 + 3:
                return cur
            prev = cur
        return prev

    def exists(self, name: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return row.fetchone() is not None

    def server_pids(self, name: str) -> list[int]:
        """The backends connected to database ``name`` and the server's own processes."""
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s"
            " OR backend_type NOT IN ('client backend', 'autovacuum worker')",
            (name,),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def version(self) -> str:
        row = self.conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    ready: Path
    log: Path


def start_workers(url: str, count: int, tmp: Path, tag: str, profile: Path | None) -> list[Worker]:
    env = dict(os.environ)
    if profile is not None:
        env[PROFILE_ENV] = str(profile)
    else:
        env.pop(PROFILE_ENV, None)
    workers = []
    for i in range(count):
        ready, log = tmp / f"{tag}-{i}.ready", tmp / f"{tag}-{i}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--serve",
                    url,
                    "--ready",
                    str(ready),
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
            )
        workers.append(Worker(proc, ready, log))
    return workers


def log_tail(w: Worker, lines: int = 15) -> str:
    try:
        return "\n".join(w.log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(workers: list[Worker], runner: Any) -> float:
    """Seconds until every worker wrote its ready file and is listed in the workers table."""
    t = time.perf_counter()
    deadline = t + READY_TIMEOUT
    while True:
        for w in workers:
            if w.proc.poll() is not None:
                raise SystemExit(
                    f"worker {w.proc.pid} exited ({w.proc.returncode}):\n{log_tail(w)}"
                )
        if all(w.ready.exists() for w in workers):
            pids = {row.pid for row in runner.store.list_workers()}
            if all(w.proc.pid in pids for w in workers):
                return time.perf_counter() - t
        if time.perf_counter() > deadline:
            raise SystemExit(f"workers not ready after {READY_TIMEOUT:g} s")
        time.sleep(0.02)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle, iowait
    total = sum(parts[:8])  # up to steal; guest time is already in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


@dataclass
class CpuSample:
    """CPU used so far by the workers, this (client) process, the database's server processes
    (its backends and the server's auxiliary processes) and the whole machine."""

    workers: dict[int, float]
    client: float
    server: dict[int, float]
    machine: tuple[float, float]

    @staticmethod
    def take(workers: list[Worker], server: Server, name: str) -> CpuSample:
        import resource

        me = resource.getrusage(resource.RUSAGE_SELF)
        return CpuSample(
            workers={w.proc.pid: proc_cpu_s(w.proc.pid) or 0.0 for w in workers},
            client=me.ru_utime + me.ru_stime,
            server={pid: proc_cpu_s(pid) or 0.0 for pid in server.server_pids(name)},
            machine=machine_cpu(),
        )

    def since(self, start: CpuSample, tasks: int) -> dict[str, Any]:
        """CPU ms per task of each party between ``start`` and this sample; backends that
        appeared in between count from zero (those that came and went are missed)."""

        def delta(now: dict[int, float], then: dict[int, float]) -> float:
            return sum(v - then.get(pid, 0.0) for pid, v in now.items())

        busy = self.machine[0] - start.machine[0]
        total = self.machine[1] - start.machine[1]
        per = 1000 / tasks
        return {
            "cpu_ms_per_task": {
                "workers": round(delta(self.workers, start.workers) * per, 3),
                "client": round((self.client - start.client) * per, 3),
                "postgres": round(delta(self.server, start.server) * per, 3),
                "machine": round(busy * per, 3),
            },
            "machine_busy_pct": round(100 * busy / total, 1) if total else None,
        }


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def stop_workers(workers: list[Worker], timeout: float = 30.0) -> list[int | None]:
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for w in workers:
        try:
            codes.append(w.proc.wait(timeout))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()
            codes.append(None)
    return codes


# ---------------------------------------------------------------------------------------------
# One measurement: W workers, N runs from 8 client threads
# ---------------------------------------------------------------------------------------------


def drive(runner: Any, n: int, threads: int) -> dict[str, Any]:
    """N fanout runs taken by ``threads`` threads (schedule + wait each); timings."""
    lock = threading.Lock()
    next_run = iter(range(n))
    first: list[float] = []
    last: list[float] = []
    latency: list[float] = []
    in_db: list[float] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while True:
                with lock:
                    i = next(next_run, None)
                if i is None:
                    return
                t = time.perf_counter()
                with lock:
                    if not first:
                        first.append(t)
                execution_id = runner.schedule_workflow("fanout", {"i": i})
                res = runner.wait(execution_id, timeout=RUN_TIMEOUT)
                done = time.perf_counter()
                workloads.check_fanout(res, f"fanout run {i}")
                with lock:
                    last.append(done)
                    latency.append(done - t)
                    if res.started_at and res.finished_at:
                        in_db.append((res.finished_at - res.started_at).total_seconds())
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    pool = [threading.Thread(target=work, name=f"client-{k}") for k in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    if errors:
        raise errors[0]
    wall = max(last) - first[0]
    lat = sorted(latency)
    return {
        "wall_s": wall,
        "latency_ms_median": round(statistics.median(lat) * 1000, 2),
        "latency_ms_p95": round(lat[int(0.95 * (len(lat) - 1))] * 1000, 2),
        "run_in_db_ms_median": round(statistics.median(in_db) * 1000, 2) if in_db else None,
    }


def tasks_by_worker(url: str) -> list[int] | None:
    """Completed tasks per worker (``worker_id``), most first; warm-up included."""
    import psycopg

    with psycopg.connect(libpq(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT worker_id, count(*) FROM task_executions WHERE status = 'completed'"
            " GROUP BY worker_id ORDER BY 2 DESC"
        ).fetchall()
    if not rows or any(r[0] is None for r in rows):
        return None  # the claim is not kept after completion
    return [int(r[1]) for r in rows]


def measure(
    server: Server,
    w: int,
    n: int,
    threads: int,
    idle: float,
    client_poll: float | None,
    profile: Path | None,
    rep: int,
) -> dict[str, Any]:
    from cloacina import DefaultRunner

    workloads.define_fanout()  # the client resolves "fanout" to the same workflow (and version)
    name = f"cloacina_pg_scale_{os.getpid()}_w{w}_r{rep}"
    with (
        server.database(name),
        tempfile.TemporaryDirectory(prefix="cloacina-pg-scale-") as tmp_dir,
    ):
        url = with_database(server.url, name, "postgresql")
        tmp = Path(tmp_dir)
        if profile is not None:  # this measurement's workers write w<W>-*: start clean
            for old in [*profile.glob(f"w{w}-*.json"), *profile.glob(f"w{w}-*.pstats")]:
                old.unlink()
        client_settings: dict[str, Any] = {"execute_tasks": False}
        if client_poll is not None:
            client_settings["poll_interval"] = client_poll
        workers: list[Worker] = []
        runner = None
        try:
            # The client opens the store first: the schema is migrated once, before workers.
            runner = DefaultRunner(url, **client_settings)
            workers = start_workers(url, w, tmp, f"w{w}", profile)
            ready_s = wait_ready(workers, runner)
            drive(runner, threads, threads)  # warm-up: one run per thread, not timed
            time.sleep(1.2)  # let the warm-up's statistics reach pg_stat_database
            s0 = server.stats(name)
            time.sleep(idle)
            s1 = server.stats(name)
            idle_rate = (s1["xact_commit"] - s0["xact_commit"]) / (s1["t"] - s0["t"])
            cpu0 = CpuSample.take(workers, server, name)
            fig = drive(runner, n, threads)
            cpu1 = CpuSample.take(workers, server, name)
            s2 = server.settled(name, idle_rate)
            rss = [peak_rss_mb(wk.proc.pid) for wk in workers]
            share = tasks_by_worker(url)  # after the statistics: its reads are not counted
        finally:
            codes = stop_workers(workers) if workers else []
            if runner is not None:
                runner.shutdown()
        bad = [(wk, c) for wk, c in zip(workers, codes, strict=True) if c != 0]
        if bad:
            wk, c = bad[0]
            raise SystemExit(f"worker {wk.proc.pid} stopped with {c}:\n{log_tail(wk)}")
    tasks = n * TASKS_PER_RUN
    wall = fig.pop("wall_s")
    gross = s2["xact_commit"] - s1["xact_commit"]
    outside = max(0.0, (s2["t"] - s1["t"]) - wall)  # settling time, and the threads' start
    net = gross - idle_rate * outside
    out: dict[str, Any] = {
        "scenario": "pg-scale",
        "system": f"cloacina-py-{workloads.engine_version()}",
        "workers": w,
        "workflows": n,
        "tasks": tasks,
        "wall_s": round(wall, 3),
        "tasks_per_s": round(tasks / wall, 1),
        **fig,
        **cpu1.since(cpu0, tasks),
        "tx_per_task": round(net / tasks, 2),
        "tx_per_task_gross": round(gross / tasks, 2),
        "rollbacks_per_task": round((s2["xact_rollback"] - s1["xact_rollback"]) / tasks, 2),
        "rows_written_per_task": round(
            sum(s2[c] - s1[c] for c in ("tup_inserted", "tup_updated", "tup_deleted")) / tasks, 2
        ),
        "tx_per_s_during_run": round(net / wall, 1),
        "idle_tx_per_s": round(idle_rate, 1),
        "workers_ready_s": round(ready_s, 2),
        "tasks_by_worker": share,
        "worker_peak_rss_mb": rss,
        "client_peak_rss_mb": workloads.peak_rss_mb(),
        "client_poll_s": client_poll,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "threads": threads,
    }
    if profile is not None:
        out["profiled"] = True
    return out


# ---------------------------------------------------------------------------------------------
# The peers, on the same server
# ---------------------------------------------------------------------------------------------


def run_peer(server: Server, peer: str, n: int, peers_dir: Path, timeout: float) -> dict[str, Any]:
    python = Path(f"/tmp/{peer}-peer/bin/python")
    script = peers_dir / peer / "workloads.py"
    if not python.exists() or not script.is_file():
        return {"system": PEER_LABEL[peer], "error": f"missing {python} or {script}"}
    name = f"cloacina_pg_scale_{os.getpid()}_{peer}"
    if peer == "cloaca":
        # cloaca 0.3.1 ignores the URL's database: it always connects to the one named
        # "cloacina" (DefaultRunner passes that name, which replaces the URL's path).
        name = CLOACA_DB
        if server.exists(name):
            return {
                "system": PEER_LABEL[peer],
                "error": f'database "{name}" already exists (cloaca 0.3.1 can only use the '
                "database of that name): not touching it",
            }
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with server.database(name), tempfile.TemporaryDirectory(prefix=f"pg-scale-{peer}-") as tmp:
        url = with_database(server.url, name, PEER_SCHEME[peer])
        cmd = [str(python), str(script), "fanout", "--db", url, "--n", str(n)]
        t = time.perf_counter()
        try:
            res = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp
            )
        except subprocess.TimeoutExpired:
            return {"system": PEER_LABEL[peer], "error": f"timed out after {timeout:g} s"}
        process_s = time.perf_counter() - t
        time.sleep(1.2)  # the peer's backends have exited; their statistics are in by now
        stats = server.stats(name)
    fig: dict[str, Any] = {}
    for line in reversed(res.stdout.strip().splitlines()):
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict) and "tasks_per_s" in obj:
                fig = obj
                break
    if res.returncode != 0 or not fig:
        tail = " | ".join(res.stderr.strip().splitlines()[-3:])
        return {"system": PEER_LABEL[peer], "error": f"exit {res.returncode}: {tail}"}
    tasks = fig["tasks"]
    fig.update(
        scenario="pg-scale-peer",
        workers=1,
        url_scheme=PEER_SCHEME[peer],
        process_s=round(process_s, 2),
        # the whole process, schema creation and start-up included
        tx_per_task_process=round(stats["xact_commit"] / tasks, 2),
        rollbacks_per_task_process=round(stats["xact_rollback"] / tasks, 2),
    )
    return fig


# ---------------------------------------------------------------------------------------------
# Profiles written by the workers (--profile)
# ---------------------------------------------------------------------------------------------


def profile_report(folder: Path, tag: str, tasks: int, top: int = 20) -> dict[str, Any]:
    """Statements and database time per task, and the merged cProfile, of the workers of
    one measurement (warm-up and idle time included: the figures are per measured task)."""
    sql: dict[str, list[float]] = {}
    for path in sorted(folder.glob(f"{tag}-*.json")):
        for key, (count, secs) in json.loads(path.read_text())["sql"].items():
            entry = sql.setdefault(key, [0, 0.0])
            entry[0] += count
            entry[1] += secs
    total_n = sum(v[0] for v in sql.values())
    total_s = sum(v[1] for v in sql.values())
    print(
        f"\n=== {tag}: SQL statements sent by the workers (whole life, warm-up and idle "
        f"included), per measured task: {total_n / tasks:.2f} statements, "
        f"{total_s * 1000 / tasks:.3f} ms waiting on them "
        f"({total_s * 1e6 / max(total_n, 1):.0f} us per statement)"
    )
    for key, (count, secs) in sorted(sql.items(), key=lambda kv: -kv[1][1])[:14]:
        print(f"  {count / tasks:7.2f}/task {secs * 1000 / tasks:7.3f} ms/task  {key}")
    summary: dict[str, Any] = {
        "statements_per_task": round(total_n / tasks, 2),
        "sql_ms_per_task": round(total_s * 1000 / tasks, 3),
        "us_per_statement": round(total_s * 1e6 / max(total_n, 1), 1),
    }
    files = sorted(folder.glob(f"{tag}-*.pstats"))
    if files:
        from profile_task import drop_waits  # bench/profile_task.py

        stats = pstats.Stats(str(files[0]))
        for f in files[1:]:
            stats.add(str(f))
        waited = drop_waits(stats)
        raw: dict[Any, Any] = stats.stats
        # psycopg blocks for the server's reply inside its Python-level wait(): a wait too
        server_wait = [k for k in raw if k[0].endswith("psycopg/connection.py") and k[2] == "wait"]
        on_server = sum(raw[k][2] for k in server_wait)
        for k in server_wait:
            del raw[k]
        summary["psycopg_wait_ms_per_task"] = round(on_server * 1000 / tasks, 3)
        own = sum(v[2] for v in raw.values())
        summary["cpu_ms_per_task"] = round(own * 1000 / tasks, 3)
        buf = io.StringIO()
        stats.stream = buf
        stats.sort_stats("tottime").print_stats(top)
        text = buf.getvalue()
        print(
            f"=== {tag}: workers' own time (all threads; left out: {waited:.1f} s of lock/"
            f"queue/sleep/select waits, and {on_server:.1f} s in psycopg's wait for replies = "
            f"{on_server * 1000 / tasks:.3f} ms per measured task): "
            f"{own * 1000 / tasks:.3f} ms per measured task; top {top} by own time"
        )
        print((text[text.find("   ncalls") :] if "   ncalls" in text else text).rstrip())
    return summary


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def median_of(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return statistics.median(vals) if vals else None


def cpu_text(rows: list[dict[str, Any]]) -> str:
    """Median CPU ms per task of the workers, the client and PostgreSQL: 'w + c + pg'."""
    parts = []
    for who in ("workers", "client", "postgres"):
        vals = [r["cpu_ms_per_task"][who] for r in rows if "cpu_ms_per_task" in r]
        parts.append(f"{statistics.median(vals):.2f}" if vals else "?")
    return " + ".join(parts)


def report(
    ours: dict[int, list[dict[str, Any]]], peers: list[dict[str, Any]], task_ms: float = 0.0
) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    base = median_of(ours.get(1, []), "tasks_per_s")
    repeats = max((len(v) for v in ours.values()), default=1)
    polls = {r.get("client_poll_s") for rows in ours.values() for r in rows}
    poll = next(iter(polls)) if len(polls) == 1 else None
    table = Table(
        title="pg-scale: fanout (root -> 10 leaves -> join) on PostgreSQL"
        + (f", every task sleeping {task_ms:g} ms (not the standard workload)" if task_ms else "")
        + (f", median of {repeats}" if repeats > 1 else "")
        + (f"; client poll_interval {poll:g} s" if poll is not None else ""),
        title_justify="left",
        title_style="bold",
    )
    for col, just in (
        ("system", "left"),
        ("workers", "right"),
        ("runs", "right"),
        ("tasks/s", "right"),
        ("vs 1 worker", "right"),
        ("wall s", "right"),
        ("latency ms med, p95", "right"),
        ("tx/task", "right"),
        ("CPU ms/task w + c + pg", "right"),
        ("busy %", "right"),
        ("RSS MB/worker", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    summary: dict[str, Any] = {"ours": {}, "peers": {}}
    for w, rows in sorted(ours.items()):
        rate = median_of(rows, "tasks_per_s")
        ratio = rate / base if rate and base else None
        spread = ""
        if len(rows) > 1:
            vals = [r["tasks_per_s"] for r in rows]
            spread = f" ({min(vals):,.1f}..{max(vals):,.1f})"
        rss = [x for r in rows for x in r.get("worker_peak_rss_mb", []) if x is not None]
        table.add_row(
            rows[0]["system"],
            str(w),
            str(rows[0]["workflows"]),
            f"{rate:,.1f}{spread}" if rate else "—",
            f"{ratio:.2f}x" if ratio else "—",
            f"{median_of(rows, 'wall_s'):.3f}",
            f"{median_of(rows, 'latency_ms_median'):.1f}, {median_of(rows, 'latency_ms_p95'):.1f}",
            f"{median_of(rows, 'tx_per_task'):.2f}",
            cpu_text(rows),
            f"{median_of(rows, 'machine_busy_pct'):.0f}",
            f"{max(rss):.1f}" if rss else "—",
        )
        summary["ours"][w] = {
            "tasks_per_s": rate,
            "ratio_vs_1w": ratio,
            "tx_per_task": median_of(rows, "tx_per_task"),
        }
    best = max((v["tasks_per_s"] or 0 for v in summary["ours"].values()), default=0)
    for p in peers:
        if "error" in p:
            table.add_row(p["system"], "1", "", f"[red]failed: {p['error']}[/]", *[""] * 7)
            continue
        table.add_row(
            p["system"],
            "1*",
            str(p["workflows"]),
            f"{p['tasks_per_s']:,.1f}",
            "",
            f"{p['wall_s']:.3f}",
            "",
            f"{p['tx_per_task_process']:.2f} (process)",
            "",
            "",
            "",
        )
        summary["peers"][p["system"]] = {
            "tasks_per_s": p["tasks_per_s"],
            "tx_per_task_process": p["tx_per_task_process"],
            "ours_1w_vs": base / p["tasks_per_s"] if base else None,
            "ours_best_vs": best / p["tasks_per_s"] if best else None,
        }
    console.print(table)

    def verdict(ok: bool) -> str:
        return "[green]met[/]" if ok else "[red]NOT met[/]"

    two = summary["ours"].get(2, {})
    if task_ms:
        console.print("  (the targets are for the standard workload, whose tasks do not sleep)")
        two = {}
    if two.get("tasks_per_s") is not None:
        ok = two["tasks_per_s"] >= TARGET_2W_TASKS_PER_S
        summary["target_2w_rate_met"] = ok
        console.print(
            f"  target: >= {TARGET_2W_TASKS_PER_S:,.0f} tasks/s with 2 workers: "
            f"{two['tasks_per_s']:,.1f} -> {verdict(ok)}"
        )
    if two.get("ratio_vs_1w") is not None:
        ok = two["ratio_vs_1w"] >= TARGET_2W_RATIO
        summary["target_2w_ratio_met"] = ok
        console.print(
            f"  target: 2 workers >= {TARGET_2W_RATIO:g}x one: {two['ratio_vs_1w']:.2f}x -> "
            f"{verdict(ok)}"
        )
    four = summary["ours"].get(4, {})
    if four.get("ratio_vs_1w") is not None:
        console.print(f"  4 workers / 1 worker: {four['ratio_vs_1w']:.2f}x (no target)")
    for label, p in summary["peers"].items():
        console.print(
            f"  vs {label}: cloacina with 1 worker {p['ours_1w_vs']:.1f}x, with the best W"
            f" {p['ours_best_vs']:.1f}x (> 1: cloacina faster)"
        )
    console.print(
        "[dim]tx/task: committed transactions (pg_stat_database.xact_commit, autocommit reads"
        " included) per task during the timed runs, idle background outside the run taken"
        " out; the peers': their whole process, schema creation included. * the peers run"
        " their tasks inside the submitting process. CPU: workers + client + PostgreSQL"
        " (this database's backends and the server's own processes); busy %: the whole"
        " machine, all cores (other processes too).[/]"
    )
    return summary


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pg", default=DEFAULT_PG, help="the server's maintenance database URL")
    ap.add_argument("--workers", default=",".join(map(str, DEFAULT_WORKERS)))
    ap.add_argument("--n", type=int, default=DEFAULT_N, help="fanout runs per W (default 400)")
    ap.add_argument("--threads", type=int, default=THREADS, help="client threads (default 8)")
    ap.add_argument("--repeat", type=int, default=1, help="sweeps of W (interleaved); median")
    ap.add_argument(
        "--idle", type=float, default=2.0, help="seconds to measure the idle background rate"
    )
    ap.add_argument(
        "--client-poll",
        type=float,
        default=None,
        help="the client runner's poll_interval (default: DefaultRunner's own)",
    )
    peers = ap.add_mutually_exclusive_group()
    peers.add_argument("--peers", default=",".join(PEERS), help="default: %(default)s")
    peers.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peer-n", type=int, default=PEER_N, help="peers' runs (default 80)")
    ap.add_argument("--peer-timeout", type=float, default=300.0)
    ap.add_argument(
        "--peers-dir",
        type=Path,
        default=Path(os.environ.get("CLOACINA_PEERS_DIR", "/work/shared/peers")),
    )
    ap.add_argument(
        "--task-ms",
        type=float,
        default=0.0,
        help="every task sleeps this long first (I/O-bound tasks; not the standard workload,"
        " no peers): shows how capacity grows with workers when the CPU is not the limit",
    )
    ap.add_argument("--profile", type=Path, default=None, help="profile the workers into DIR")
    ap.add_argument("--json", type=Path, default=None, help="write every figure to FILE")
    # internal: one worker process
    ap.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ready", type=Path, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    if a.serve:
        return serve_worker(a.serve, a.ready)
    run(a)
    return 0


def run(a: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark (``bench/run.py pg-scale`` calls this); returns every figure."""
    sizes = [int(x) for x in a.workers.split(",") if x.strip()]
    peer_names = [] if a.no_peers else [p.strip() for p in a.peers.split(",") if p.strip()]
    unknown = set(peer_names) - set(PEERS)
    if unknown:
        raise SystemExit(f"unknown peer(s): {', '.join(sorted(unknown))}")
    if a.profile:
        a.profile.mkdir(parents=True, exist_ok=True)
    if a.task_ms:
        os.environ[TASK_MS_ENV] = str(a.task_ms)  # the workers inherit it
        peer_names = []  # the peers' task bodies do not sleep: no comparison
    else:
        os.environ.pop(TASK_MS_ENV, None)
    server = Server(a.pg)
    doc: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "server": server.version(),
        "cpus": os.cpu_count(),
        "args": {k: str(v) for k, v in vars(a).items()},
        "ours": [],
        "peers": [],
    }
    ours: dict[int, list[dict[str, Any]]] = {}
    t_all = time.perf_counter()
    try:
        for rep in range(a.repeat):
            for w in sizes:
                fig = measure(server, w, a.n, a.threads, a.idle, a.client_poll, a.profile, rep)
                if a.profile:
                    fig["profile"] = profile_report(a.profile, f"w{w}", fig["tasks"])
                print(json.dumps(fig), flush=True)
                ours.setdefault(w, []).append(fig)
                doc["ours"].append(fig)
        for peer in peer_names:
            fig = run_peer(server, peer, a.peer_n, a.peers_dir, a.peer_timeout)
            print(json.dumps(fig), flush=True)
            doc["peers"].append(fig)
    finally:
        server.close()
    print()
    doc["summary"] = report(ours, doc["peers"], a.task_ms)
    doc["elapsed_s"] = round(time.perf_counter() - t_all, 1)
    print(f"({doc['elapsed_s']:.0f} s)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return doc


if __name__ == "__main__":
    sys.exit(main())
