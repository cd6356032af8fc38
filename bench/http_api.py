"""The HTTP API's figures (issue 10, "Must reach"), beside the embedded figure, in one command.

    python bench/http_api.py                      # SQLite, and PostgreSQL for the list
    python bench/http_api.py --no-pg --n 100      # SQLite only, fewer chain3 runs
    python bench/http_api.py --json bench/out/http.json

(Not ``bench/http.py``: a script's directory comes first on ``sys.path``, so a file named
``http.py`` there would stand in for the standard library's ``http`` package in every bench
script, and ``urllib.request``, which alert delivery imports, would break.)

What it does, on loopback, one step after another:

1. A fresh SQLite file; an admin key made with the CLI (``cloacina api-keys create --role
   admin``, the key read from its last line); ``cloacina serve`` started in a subprocess on
   a free port with ``--module bench/http_flows.py`` (chain3 and ticker), executing tasks
   in-process; the bench waits for ``/readyz``.
2. **chain3, embedded and over HTTP, in turn**: N runs (``--n``, default 200) of each after
   5 warm-up runs of each, one embedded run (a ``DefaultRunner`` in this process, on a
   SQLite file of its own) then one over HTTP (``cloacina.Client.execute("chain3")``: POST,
   then wait through the event stream, then read the result), and so on, so that both
   figures come from the same moments of a shared, noisy machine: medians, p95s and their
   ratio.
3. **Submissions**: ``--submit`` (1,000) chain3 runs submitted (``schedule_workflow``, a POST
   each) from ``--threads`` (8) threads sharing one client: submissions per second (from the
   first POST to the last answer) and the p99 of one POST's latency. The server executes the
   runs meanwhile; the bench then waits for all of them (not timed) and checks some results.
4. **Event latency**: ``--event-runs`` (20) runs of ``ticker`` (5 tasks in a line, 20 ms
   each), one at a time, each followed through its event stream
   (``Client.stream_events``): for every event that arrives live, the time from the
   event's own timestamp (taken just before its transaction commits, so the figure errs
   high) to its arrival at the listener; p50, p95 and the largest.
5. **First page of the execution list** with ``--rows`` (100,000) runs in the database: the
   runs are inserted in bulk through the store (a setup step; ANALYZE on PostgreSQL, as
   autovacuum would), then ``GET /api/v1/executions?limit=50`` is timed 30 times through the
   client (median, p95), beside the same call in-process (``DefaultRunner
   .list_executions_page``); also the second page (by its cursor) and a page filtered by
   status. On SQLite with the server of steps 1-4; on PostgreSQL (``--pg``, the server's
   maintenance database: a fresh database is created and dropped) with a second server
   started ``--no-execute``. ``--no-pg`` skips PostgreSQL.

Prints a table of every figure beside its target, with the ratio to the target (< 1 is
inside an upper bound, > 1 inside a lower one) and whether it is met; ``--json FILE``
writes every figure. The machines are shared and noisy: an absolute time from one run means
little, the ratios (HTTP/embedded) more.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
FLOWS = BENCH_DIR / "http_flows.py"
sys.path.insert(0, str(REPO_DIR / "src"))

from cloacina import Client, DefaultRunner  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
CHAIN3_N = 200
WARMUP = 5
SUBMIT_N = 1_000
THREADS = 8
EVENT_RUNS = 20
ROWS = 100_000
LIST_REPEAT = 30
PAGE = 50

#: figure key -> (label, bound, bound is an upper limit)
TARGETS: dict[str, tuple[str, float, bool]] = {
    "embedded_chain3_median_ms": ("chain3 embedded, median ms/run", 2.0, True),
    "http_chain3_median_ms": ("chain3 over HTTP, median ms/run", 5.0, True),
    "submit_per_s": ("submissions over HTTP (8 threads), per s", 500.0, False),
    "submit_p99_ms": ("one submission, p99 ms", 50.0, True),
    "event_p95_ms": ("event commit -> stream listener, p95 ms", 50.0, True),
    "list_first_page_sqlite_ms": ("first page of {rows} runs, SQLite, median ms", 50.0, True),
    "list_first_page_postgres_ms": ("first page of {rows} runs, PostgreSQL, median ms", 50.0, True),
}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def say(text: str) -> None:
    print(f"[http-bench] {text}", file=sys.stderr, flush=True)


# ---- processes -------------------------------------------------------------------------------
def cli(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``cloacina ARGS`` (this interpreter); its stdout (SystemExit with its stderr if it
    fails)."""
    proc = subprocess.run(
        [sys.executable, "-m", "cloacina", *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"cloacina {args[0]} {args[1] if len(args) > 1 else ''} failed:\n"
            f"{proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


def make_admin_key(url: str) -> str:
    out = cli("api-keys", "create", "--db", url, "--name", "bench", "--role", "admin")
    key = out.strip().splitlines()[-1].strip()
    if not key:
        raise SystemExit("cloacina api-keys create printed no key")
    return key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(
    url: str, key: str, log: Path, *, execute: bool = True, module: Path | None = None
) -> Iterator[str]:
    """``cloacina serve`` on a free loopback port until the block ends (SIGTERM); its base
    URL once ``/readyz`` answers 200."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "cloacina", "serve", "--db", url, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--module", str(module or FLOWS)]
    if not execute:
        cmd.append("--no-execute")
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, cwd=BENCH_DIR)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(
                    f"cloacina serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"cloacina serve not ready in 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- 1 and 3. chain3, embedded and over HTTP, interleaved ----------------------------------
def check_chain3(result: Any) -> None:
    if str(result.status) != "completed":
        raise SystemExit(f"chain3: {result.status}, error {result.error!r}")
    total = result.final_context["final_report"]["summary"]["total_processed"]
    assert total == 950, result.final_context


def chain3_side_by_side(client: Client, url: str, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """chain3 ``n`` times embedded (a DefaultRunner in this process, on its own SQLite
    file) and ``n`` times over HTTP, one of each in turn, so that both see the same load:
    the embedded figure and the HTTP figure of the same moments."""
    import http_flows  # noqa: F401  (defines chain3 in this process)

    emb: list[float] = []
    web: list[float] = []
    with DefaultRunner(url, max_concurrent_tasks=8) as local:
        for i in range(WARMUP):
            check_chain3(local.execute("chain3", {"i": -1 - i}))
            check_chain3(client.execute("chain3", {"i": -1 - i}))
        for i in range(n):
            t = time.perf_counter()
            result = local.execute("chain3", {"i": i})
            emb.append(time.perf_counter() - t)
            check_chain3(result)
            t = time.perf_counter()
            result = client.execute("chain3", {"i": i})
            web.append(time.perf_counter() - t)
            check_chain3(result)

    def fig(lat: list[float]) -> dict[str, Any]:
        return {"n": n, "median_ms": ms(statistics.median(lat)), "p95_ms": ms(pct(lat, 0.95))}

    return fig(emb), fig(web)


# ---- 4. submissions from threads -------------------------------------------------------------
def submissions(client: Client, n: int, threads: int) -> dict[str, Any]:
    for i in range(threads * 2):  # every thread's connection up before the clock starts
        client.schedule_workflow("chain3", {"warm": i})
    lat: list[float] = []
    ids: list[str] = []
    lock = threading.Lock()
    taken = iter(range(n))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while True:
                with lock:
                    i = next(taken, None)
                if i is None:
                    return
                t = time.perf_counter()
                execution_id = client.schedule_workflow("chain3", {"i": i})
                took = time.perf_counter() - t
                with lock:
                    lat.append(took)
                    ids.append(execution_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"submissions failed: {errors[0]!r}")
    # Let the server finish the runs (not timed), and check a few of them.
    t1 = time.perf_counter()
    for execution_id in ids[:: max(1, len(ids) // 20)]:
        check_chain3(client.wait(execution_id, timeout=300))
    for execution_id in ids:
        result = client.wait(execution_id, timeout=300)
        if str(result.status) != "completed":
            raise SystemExit(f"submitted run {execution_id}: {result.status} {result.error!r}")
    return {
        "n": n,
        "threads": threads,
        "wall_s": round(wall, 3),
        "per_s": round(n / wall, 1),
        "median_ms": ms(statistics.median(lat)),
        "p95_ms": ms(pct(lat, 0.95)),
        "p99_ms": ms(pct(lat, 0.99)),
        "max_ms": ms(max(lat)),
        "drain_s": round(time.perf_counter() - t1, 2),
    }


# ---- 5. event latency ------------------------------------------------------------------------
def event_latency(client: Client, runs: int) -> dict[str, Any]:
    lat: list[float] = []
    for i in range(runs):
        execution_id = client.schedule_workflow("ticker", {"i": i})
        opened = time.time()
        for event in client.stream_events(execution_id, timeout=60):
            arrived = time.time()
            at = event.at.timestamp()
            if at >= opened:  # committed after the stream was open: it came live
                lat.append(arrived - at)
    if not lat:
        raise SystemExit("no event arrived live on a stream")
    return {
        "runs": runs,
        "events": len(lat),
        "p50_ms": ms(statistics.median(lat)),
        "p95_ms": ms(pct(lat, 0.95)),
        "max_ms": ms(max(lat)),
    }


# ---- 6. the execution list with many runs ---------------------------------------------------
WORKFLOW_NAMES = ("chain3", "etl_daily", "report", "ingest")


def insert_runs(url: str, rows: int) -> float:
    """``rows`` finished runs inserted in bulk through the store (no task rows: the list
    reads none); seconds it took."""
    from sqlalchemy import text

    from cloacina.store import open_store
    from cloacina.store.tables import workflow_executions

    t = time.perf_counter()
    store = open_store(url)
    try:
        now = time.time()
        span = 30 * 86_400.0
        batch: list[dict[str, Any]] = []
        with store.engine.begin() as conn:  # type: ignore[attr-defined]
            for i in range(rows):
                created = now - span + span * i / rows
                status = "failed" if i % 13 == 0 else "cancelled" if i % 47 == 0 else "completed"
                batch.append(
                    {
                        "id": str(uuid.uuid4()),
                        "tenant": "public",
                        "package": "embedded",
                        "workflow_name": WORKFLOW_NAMES[i % len(WORKFLOW_NAMES)],
                        "workflow_version": "bench",
                        "status": status,
                        "input_context": "{}",
                        "final_context": "{}",
                        "error": f"task load failed: row {i} was malformed"
                        if status == "failed"
                        else None,
                        "tasks_total": 3,
                        "tasks_remaining": 0,
                        "tasks_failed": 1 if status == "failed" else 0,
                        "created_at": created,
                        "started_at": created + 0.001,
                        "finished_at": created + 0.5,
                        "updated_at": created + 0.5,
                    }
                )
                if len(batch) == 5_000:
                    conn.execute(workflow_executions.insert(), batch)
                    batch = []
            if batch:
                conn.execute(workflow_executions.insert(), batch)
        if not url.startswith("sqlite"):
            with store.engine.connect() as conn:  # type: ignore[attr-defined]
                conn.execute(text("COMMIT"))
                conn.execute(text("ANALYZE workflow_executions"))
    finally:
        store.close()
    return time.perf_counter() - t


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    fn()  # warm
    lat = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    return ms(statistics.median(lat)), ms(pct(lat, 0.95))


def list_pages(client: Client, url: str, rows: int) -> dict[str, Any]:
    first = client.list_executions_page(limit=PAGE)
    if len(first.items) != PAGE or first.next_cursor is None:
        raise SystemExit(f"the first page holds {len(first.items)} runs, expected {PAGE}")
    cursor = first.next_cursor
    med, p95 = timed(lambda: client.list_executions_page(limit=PAGE), LIST_REPEAT)
    med2, _ = timed(lambda: client.list_executions_page(limit=PAGE, cursor=cursor), LIST_REPEAT)
    med_failed, _ = timed(
        lambda: client.list_executions_page(limit=PAGE, status="failed"), LIST_REPEAT
    )
    with DefaultRunner(url, execute_tasks=False) as local:
        med_local, _ = timed(lambda: local.list_executions_page(limit=PAGE), LIST_REPEAT)
    return {
        "rows": rows,
        "first_page_ms": med,
        "first_page_p95_ms": p95,
        "second_page_ms": med2,
        "failed_page_ms": med_failed,
        "first_page_in_process_ms": med_local,
    }


# ---- PostgreSQL ------------------------------------------------------------------------------
@contextlib.contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    import psycopg

    head, rest = admin_url.split("://", 1)
    plain = "postgresql://" + rest if head.startswith("postgres") else admin_url
    name = f"cloacina_http_bench_{uuid.uuid4().hex[:8]}"
    conn = psycopg.connect(plain, autocommit=True)
    try:
        conn.execute(f'CREATE DATABASE "{name}"')
        base = plain.rsplit("/", 1)[0]
        try:
            yield f"{base}/{name}"
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


# ---- the whole run ---------------------------------------------------------------------------
def run(a: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cloacina-http-bench-") as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        key = make_admin_key(url)
        with serve(url, key, Path(tmp) / "serve.log") as base, Client(base, api_key=key) as c:
            say(f"chain3 embedded and over HTTP, {a.n} runs of each, in turn ...")
            emb, figures["http_chain3"] = chain3_side_by_side(
                c, f"sqlite:///{tmp}/embedded.db", a.n
            )
            figures["embedded_chain3"] = emb
            say(f"{a.submit} submissions from {a.threads} threads ...")
            figures["submit"] = submissions(c, a.submit, a.threads)
            say(f"event latency, {a.event_runs} ticker runs ...")
            figures["events"] = event_latency(c, a.event_runs)
            say(f"inserting {a.rows:,} runs into SQLite ...")
            figures["insert_sqlite_s"] = round(insert_runs(url, a.rows), 2)
            figures["list_sqlite"] = list_pages(c, url, a.rows)
        if not a.no_pg:
            with pg_database(a.pg) as pg_url:
                pg_key = make_admin_key(pg_url)
                say(f"inserting {a.rows:,} runs into PostgreSQL ...")
                figures["insert_postgres_s"] = round(insert_runs(pg_url, a.rows), 2)
                log = Path(tmp) / "serve-pg.log"
                with (
                    serve(pg_url, pg_key, log, execute=False) as base,
                    Client(base, api_key=pg_key) as c,
                ):
                    figures["list_postgres"] = list_pages(c, pg_url, a.rows)
    flat = {
        "embedded_chain3_median_ms": emb["median_ms"],
        "http_chain3_median_ms": figures["http_chain3"]["median_ms"],
        "submit_per_s": figures["submit"]["per_s"],
        "submit_p99_ms": figures["submit"]["p99_ms"],
        "event_p95_ms": figures["events"]["p95_ms"],
        "list_first_page_sqlite_ms": figures["list_sqlite"]["first_page_ms"],
    }
    if "list_postgres" in figures:
        flat["list_first_page_postgres_ms"] = figures["list_postgres"]["first_page_ms"]
    figures["http_over_embedded"] = round(flat["http_chain3_median_ms"] / emb["median_ms"], 2)
    figures["targets"] = {
        k: {"value": v, "bound": TARGETS[k][1], "upper": TARGETS[k][2], "met": met(k, v)}
        for k, v in flat.items()
    }
    return figures


def met(key: str, value: float) -> bool:
    _, bound, upper = TARGETS[key]
    return value <= bound if upper else value >= bound


def report(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    table = Table(title="HTTP API on loopback (issue 10, Must reach)", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("value/target", justify="right")
    table.add_column("met")
    for key, row in figures["targets"].items():
        label, bound, upper = TARGETS[key]
        label = label.format(rows=f"{figures['list_sqlite']['rows']:,}")
        ratio = row["value"] / bound if bound else float("nan")
        table.add_row(
            label,
            f"{row['value']:g}",
            f"{'<=' if upper else '>='} {bound:g}",
            f"{ratio:.2f}",
            "yes" if row["met"] else "NO",
        )
    out.print(table)
    c3, sub, ev = figures["http_chain3"], figures["submit"], figures["events"]
    out.print(
        f"chain3 over HTTP / embedded: {figures['http_over_embedded']:.2f}x "
        f"(p95 {c3['p95_ms']} ms over HTTP, {figures['embedded_chain3']['p95_ms']} ms embedded)"
    )
    out.print(
        f"submissions: {sub['n']} in {sub['wall_s']} s, median {sub['median_ms']} ms, "
        f"p95 {sub['p95_ms']} ms, max {sub['max_ms']} ms (runs drained in {sub['drain_s']} s)"
    )
    out.print(f"events: {ev['events']} live, p50 {ev['p50_ms']} ms, max {ev['max_ms']} ms")
    for backend in ("sqlite", "postgres"):
        lst = figures.get(f"list_{backend}")
        if lst:
            out.print(
                f"list on {backend} ({lst['rows']:,} runs): first page {lst['first_page_ms']} ms "
                f"(p95 {lst['first_page_p95_ms']}), second {lst['second_page_ms']} ms, "
                f"status=failed {lst['failed_page_ms']} ms; in-process first page "
                f"{lst['first_page_in_process_ms']} ms"
            )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=CHAIN3_N, help="chain3 runs (default 200)")
    ap.add_argument("--submit", type=int, default=SUBMIT_N, help="submissions (default 1000)")
    ap.add_argument("--threads", type=int, default=THREADS, help="submitting threads (8)")
    ap.add_argument("--event-runs", type=int, default=EVENT_RUNS, help="ticker runs (20)")
    ap.add_argument("--rows", type=int, default=ROWS, help="runs in the list's database")
    ap.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL maintenance database URL")
    ap.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    ap.add_argument("--json", type=Path, default=None, help="write every figure to FILE")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    figures = run(a)
    figures["meta"] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "args": {k: str(v) for k, v in vars(a).items()},
    }
    report(figures)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
