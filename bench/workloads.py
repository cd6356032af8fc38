"""The standard benchmark workloads (shared/BENCHMARKS.md) on cloacina, this project's engine.

The same four workloads, with the same task bodies, are run on the peers (cloaca 0.3.1 and
DBOS 3.4.0) by their own ``workloads.py`` scripts; ``bench/run.py`` runs all of them side by
side and prints the ratios. This script is CLI-compatible with the peers' scripts.

Usage:  python bench/workloads.py SCENARIO [--db URL] [--n N] [--count-tx]
  chain3    the seed's pipeline collect_data -> process_data -> generate_report, executed
            N times one after another (default 50); prints median and p95 latency per run.
  fanout    N workflows of shape root -> 10 parallel leaves -> join (12 tasks), submitted
            from 8 threads at once (default 80); prints tasks/s.
  wide      one workflow of N independent tasks feeding one join (default 200); prints
            tasks/s.
  chain100  one workflow of N tasks in a line (default 100); prints ms per step.

Prints one JSON object on one line, with the peers' keys plus ``peak_rss_mb``.
The default database is a fresh SQLite file in a temporary directory, removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    from cloacina import Context, DefaultRunner, task, workflow
except ImportError:  # not installed: run straight from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from cloacina import Context, DefaultRunner, task, workflow

SCENARIOS = ("chain3", "fanout", "wide", "chain100")
DEFAULT_N = {"chain3": 50, "fanout": 80, "wide": 200, "chain100": 100}
FANOUT_WIDTH = 10
FANOUT_THREADS = 8
CHAIN3_WARMUP_RUNS = 2
MAX_CONCURRENT_TASKS = 8  # the peers run with 8 concurrent tasks too

TaskFn = Callable[[Context], None]


def engine_version() -> str:
    import cloacina

    version = getattr(cloacina, "__version__", None)
    if not version:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version("cloacina")
        except Exception:
            version = "unknown"
    return str(version)


def build_workflow(name: str, tasks: list[tuple[str, list[str], TaskFn]]) -> None:
    """Define and register a workflow built in code: ``(task_id, dependencies, body)``.

    The class body is a dict; its insertion order is the definition order.
    """
    attrs: dict[str, Any] = {}
    for task_id, deps, fn in tasks:
        fn.__name__ = task_id
        fn.__qualname__ = f"{name}.{task_id}"
        attrs[task_id] = task(id=task_id, dependencies=list(deps))(fn)
    workflow(name=name)(type(name, (), attrs))


# ---------------------------------------------------------------------------------------------
# Workflow definitions (task bodies identical to the peers')
# ---------------------------------------------------------------------------------------------


def define_chain3() -> None:
    # ``set`` as in the cloaca peer (the seed demo uses ``insert``; the keys are new either way)
    @workflow(name="chain3")
    class chain3:
        @task(id="collect_data")
        def collect_data(context: Context) -> None:
            context.set("raw_data", {"records": 1000, "source": "demo_database"})

        @task(id="process_data", dependencies=["collect_data"])
        def process_data(context: Context) -> None:
            raw = context.get("raw_data")
            context.set(
                "processed_data", {"processed_records": 950, "original_count": raw["records"]}
            )

        @task(id="generate_report", dependencies=["process_data"])
        def generate_report(context: Context) -> None:
            p = context.get("processed_data")
            context.set("final_report", {"summary": {"total_processed": p["processed_records"]}})


def _setter(key: str, value: Any) -> TaskFn:
    """A fresh task body that sets one key (a new function object for every task)."""

    def body(context: Context) -> None:
        context.set(key, value)

    return body


def define_fanout(width: int = FANOUT_WIDTH) -> None:
    leaves = [f"leaf_{i}" for i in range(width)]
    tasks: list[tuple[str, list[str], TaskFn]] = [("root", [], _setter("seed", 1))]
    tasks += [(leaves[i], ["root"], _setter(f"leaf_{i}", i)) for i in range(width)]
    tasks.append(("join", leaves, _setter("joined", True)))
    build_workflow("fanout", tasks)


def define_wide(n: int) -> None:
    ids = [f"w_{i}" for i in range(n)]
    tasks: list[tuple[str, list[str], TaskFn]] = [
        (ids[i], [], _setter(f"w_{i}", i)) for i in range(n)
    ]
    tasks.append(("join", ids, _setter("joined", True)))
    build_workflow("wide", tasks)


def define_chain(n: int) -> None:
    tasks: list[tuple[str, list[str], TaskFn]] = [
        (f"c_{i}", [f"c_{i - 1}"] if i else [], _setter(f"c_{i}", i)) for i in range(n)
    ]
    build_workflow("chain100", tasks)


# ---------------------------------------------------------------------------------------------
# Measurement helpers
# ---------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class TxCounter:
    """Counts the database work of this process: write transactions and SQL statements.

    On SQLite every connection opened with ``sqlite3.connect`` (the engine's own and
    SQLAlchemy's) gets a trace callback that sees each statement: a write transaction is an
    explicit ``BEGIN ... COMMIT`` that wrote, or a write statement run in autocommit mode.
    On other databases only commits made through SQLAlchemy are seen (statements are not).
    A figure that saw nothing is ``None`` rather than a wrong 0.
    """

    WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")

    def __init__(self) -> None:
        self.tx = 0
        self.statements = 0
        self._lock = threading.Lock()

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.tx, self.statements

    def install(self, url: str) -> None:
        if url.startswith("sqlite"):
            self._install_sqlite()
        else:
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            event.listen(Engine, "commit", lambda conn: self._add(1, 0))

    def _add(self, tx: int, statements: int) -> None:
        with self._lock:
            self.tx += tx
            self.statements += statements

    def _install_sqlite(self) -> None:
        import sqlite3
        import sqlite3.dbapi2

        real_connect = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            conn = real_connect(*args, **kwargs)
            conn.set_trace_callback(self._tracer())
            return conn

        sqlite3.connect = connect  # type: ignore[assignment]
        sqlite3.dbapi2.connect = connect  # type: ignore[assignment]

    def _tracer(self) -> Callable[[str], None]:
        state = {"in_tx": False, "wrote": False}  # one connection is used by one thread at once

        def trace(sql: str) -> None:
            head = sql.lstrip()[:8].upper()
            if head.startswith("BEGIN"):
                state["in_tx"], state["wrote"] = True, False
            elif head.startswith(("COMMIT", "END")):
                if state["wrote"]:
                    self._add(1, 0)
                state["in_tx"] = False
            elif head.startswith("ROLLBACK"):
                state["in_tx"] = False
            elif head.startswith("PRAGMA"):
                pass
            else:
                write = head.startswith(self.WRITES)
                if state["in_tx"]:
                    state["wrote"] = state["wrote"] or write
                    self._add(0, 1)
                else:
                    self._add(1 if write else 0, 1)

        return trace

    @staticmethod
    def figures(start: tuple[int, int], stop: tuple[int, int], tasks: int) -> dict[str, Any]:
        tx, statements = stop[0] - start[0], stop[1] - start[1]
        return {
            "tx_per_task": round(tx / tasks, 2) if tx else None,
            "stmts_per_task": round(statements / tasks, 2) if statements else None,
        }


def check(result: Any, what: str) -> dict[str, Any]:
    status = str(result.status)
    if status != "completed":
        raise SystemExit(f"{what}: status {status!r}, error {getattr(result, 'error', None)!r}")
    return dict(result.final_context)


def emit(**kw: Any) -> None:
    kw["system"] = f"cloacina-py-{engine_version()}"
    kw["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(kw), flush=True)


@contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="cloacina-bench-") as tmp:
        yield f"sqlite:///{tmp}/bench.db"


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


def run_chain3(url: str, n: int, tx: TxCounter | None) -> dict[str, Any]:
    define_chain3()
    lat: list[float] = []
    with DefaultRunner(url, max_concurrent_tasks=MAX_CONCURRENT_TASKS) as r:
        # Warm-up: a couple of runs before measuring, so that one-off costs (schema creation,
        # first statement compilation, thread start-up, imports done lazily) do not count.
        for i in range(CHAIN3_WARMUP_RUNS):
            check(r.execute("chain3", {"i": -1 - i}), "chain3 warm-up")
        start = tx.snapshot() if tx else (0, 0)
        for i in range(n):
            t = time.perf_counter()
            res = r.execute("chain3", {"i": i})
            lat.append(time.perf_counter() - t)
            out = check(res, "chain3")
            assert out["final_report"]["summary"]["total_processed"] == 950, out
        stop = tx.snapshot() if tx else (0, 0)
    fig: dict[str, Any] = {
        "scenario": "chain3",
        "n": n,
        "median_ms": round(statistics.median(lat) * 1000, 2),
        "p95_ms": round(sorted(lat)[int(0.95 * (n - 1))] * 1000, 2),
    }
    if tx:
        fig.update(tx.figures(start, stop, n * 3))
    return fig


def run_fanout(url: str, n: int, tx: TxCounter | None) -> dict[str, Any]:
    define_fanout()
    per = max(1, n // FANOUT_THREADS)
    errors: list[BaseException] = []

    with DefaultRunner(url, max_concurrent_tasks=MAX_CONCURRENT_TASKS) as r:

        def work() -> None:
            try:
                for i in range(per):
                    out = check(r.execute("fanout", {"i": i}), "fanout")
                    assert out["joined"] is True and out["seed"] == 1, out
                    assert all(out[f"leaf_{j}"] == j for j in range(FANOUT_WIDTH)), out
            except BaseException as e:  # reported after the join below
                errors.append(e)

        start = tx.snapshot() if tx else (0, 0)
        t = time.perf_counter()
        threads = [threading.Thread(target=work) for _ in range(FANOUT_THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        stop = tx.snapshot() if tx else (0, 0)
    if errors:
        raise errors[0]
    workflows = per * FANOUT_THREADS
    tasks = workflows * (FANOUT_WIDTH + 2)
    fig: dict[str, Any] = {
        "scenario": "fanout",
        "workflows": workflows,
        "tasks": tasks,
        "wall_s": round(wall, 3),
        "tasks_per_s": round(tasks / wall, 1),
    }
    if tx:
        fig.update(tx.figures(start, stop, tasks))
    return fig


def run_wide(url: str, n: int, tx: TxCounter | None) -> dict[str, Any]:
    define_wide(n)
    with DefaultRunner(url, max_concurrent_tasks=MAX_CONCURRENT_TASKS) as r:
        start = tx.snapshot() if tx else (0, 0)
        t = time.perf_counter()
        res = r.execute("wide", {})
        wall = time.perf_counter() - t
        stop = tx.snapshot() if tx else (0, 0)
        out = check(res, "wide")
    assert out["joined"] is True and all(out[f"w_{i}"] == i for i in range(n)), "wide: context"
    fig: dict[str, Any] = {
        "scenario": "wide",
        "tasks": n + 1,
        "wall_s": round(wall, 3),
        "tasks_per_s": round((n + 1) / wall, 1),
    }
    if tx:
        fig.update(tx.figures(start, stop, n + 1))
    return fig


def run_chain100(url: str, n: int, tx: TxCounter | None) -> dict[str, Any]:
    define_chain(n)
    with DefaultRunner(url, max_concurrent_tasks=MAX_CONCURRENT_TASKS) as r:
        start = tx.snapshot() if tx else (0, 0)
        t = time.perf_counter()
        res = r.execute("chain100", {})
        wall = time.perf_counter() - t
        stop = tx.snapshot() if tx else (0, 0)
        out = check(res, "chain100")
    assert all(out[f"c_{i}"] == i for i in range(n)), "chain100: context"
    fig: dict[str, Any] = {
        "scenario": "chain100",
        "tasks": n,
        "wall_s": round(wall, 3),
        "ms_per_step": round(wall / n * 1000, 3),
    }
    if tx:
        fig.update(tx.figures(start, stop, n))
    return fig


RUNNERS: dict[str, Callable[[str, int, TxCounter | None], dict[str, Any]]] = {
    "chain3": run_chain3,
    "fanout": run_fanout,
    "wide": run_wide,
    "chain100": run_chain100,
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenario", choices=SCENARIOS)
    ap.add_argument("--db", default=None, help="database URL (default: a fresh temp SQLite file)")
    ap.add_argument("--n", type=int, default=None, help="size (default: as the peers)")
    ap.add_argument(
        "--count-tx",
        action="store_true",
        help="also report write transactions and SQL statements per task (tx_per_task,\n"
        "stmts_per_task); the counting slows the run down",
    )
    a = ap.parse_args(argv)
    n = a.n or DEFAULT_N[a.scenario]
    with database(a.db) as url:
        tx = None
        if a.count_tx:
            tx = TxCounter()
            tx.install(url)
        fig = RUNNERS[a.scenario](url, n, tx)
    emit(**fig)


if __name__ == "__main__":
    main()
