"""The standard benchmark workloads (shared/BENCHMARKS.md) on cloacina, this project's engine.

The same four workloads, with the same task bodies, are run on the peers (cloaca 0.3.1 and
DBOS 3.4.0) by their own ``workloads.py`` scripts; ``bench/run.py`` runs all of them side by
side and prints the ratios. This script is CLI-compatible with the peers' scripts.

Usage:  python bench/workloads.py SCENARIO [--db URL] [--n N] [--count-tx] [--packaged]
  chain3    the seed's pipeline collect_data -> process_data -> generate_report, executed
            N times one after another (default 50); prints median and p95 latency per run.
  fanout    N workflows of shape root -> 10 parallel leaves -> join (12 tasks), submitted
            from 8 threads at once (default 80); prints tasks/s.
  wide      one workflow of N independent tasks feeding one join (default 200); prints
            tasks/s.
  chain100  one workflow of N tasks in a line (default 100); prints ms per step.

Prints one JSON object on one line, with the peers' keys plus ``peak_rss_mb`` and ``form``.
The default database is a fresh SQLite file in a temporary directory, removed afterwards.

``--packaged`` (chain3 and fanout) runs the *packaged* form of the workflow: the same task
bodies written into a temporary workflow project (``pyproject.toml`` + ``src/<pkg>/flows.py``
with a ``@packaged_workflow`` class), built into a ``.cloacina`` archive (not timed),
registered into a fresh runner (``register_ms``) and executed by name; the tasks run in the
package's worker processes. Before the usual measurement the script takes, ``--first-runs``
times (default 3), alternately on a fresh runner and a fresh database each: the first run of
the embedded form and registration + first run of the packaged form (worker process start
and import included), after one unmeasured embedded run that warms this process up, so that
``first_run_overhead_ms`` (median of the pairwise differences) is what packaging adds.
"""

from __future__ import annotations

import argparse
import json
import os
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
PACKAGED_SCENARIOS = ("chain3", "fanout")
DEFAULT_N = {"chain3": 50, "fanout": 80, "wide": 200, "chain100": 100}
FANOUT_WIDTH = 10
FANOUT_THREADS = 8
CHAIN3_WARMUP_RUNS = 2
MAX_CONCURRENT_TASKS = 8  # the peers run with 8 concurrent tasks too
FIRST_RUNS = 3  # --packaged: fresh-runner first runs of each form (median taken)

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


def _setter(key: str, value: Any, sleep_s: float = 0.0) -> TaskFn:
    """A fresh task body that sets one key (a new function object for every task), after
    sleeping ``sleep_s`` (a stand-in for I/O; 0 in the standard workloads)."""

    def body(context: Context) -> None:
        if sleep_s:
            time.sleep(sleep_s)
        context.set(key, value)

    return body


def define_fanout(width: int = FANOUT_WIDTH, task_ms: float = 0.0) -> None:
    leaves = [f"leaf_{i}" for i in range(width)]
    s = task_ms / 1000
    tasks: list[tuple[str, list[str], TaskFn]] = [("root", [], _setter("seed", 1, s))]
    tasks += [(leaves[i], ["root"], _setter(f"leaf_{i}", i, s)) for i in range(width)]
    tasks.append(("join", leaves, _setter("joined", True, s)))
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


def check(result: Any, what: str, package: str | None = None) -> dict[str, Any]:
    """The final context of a completed run; ``package``: the run must be of that package."""
    status = str(result.status)
    if status != "completed":
        raise SystemExit(f"{what}: status {status!r}, error {getattr(result, 'error', None)!r}")
    if package is not None and result.package != package:
        raise SystemExit(f"{what}: ran the workflow of {result.package!r}, not of {package!r}")
    return dict(result.final_context)


def emit(**kw: Any) -> None:
    kw["system"] = f"cloacina-py-{engine_version()}"
    kw.setdefault("form", "embedded")
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


def check_chain3(res: Any, what: str, package: str | None = None) -> None:
    out = check(res, what, package)
    assert out["final_report"]["summary"]["total_processed"] == 950, out


def check_fanout(res: Any, what: str, package: str | None = None) -> None:
    out = check(res, what, package)
    assert out["joined"] is True and out["seed"] == 1, out
    assert all(out[f"leaf_{j}"] == j for j in range(FANOUT_WIDTH)), out


def measure_chain3(
    r: DefaultRunner, n: int, tx: TxCounter | None, package: str | None = None
) -> dict[str, Any]:
    lat: list[float] = []
    # Warm-up: a couple of runs before measuring, so that one-off costs (schema creation,
    # first statement compilation, thread start-up, imports done lazily) do not count.
    for i in range(CHAIN3_WARMUP_RUNS):
        check_chain3(r.execute("chain3", {"i": -1 - i}), "chain3 warm-up", package)
    start = tx.snapshot() if tx else (0, 0)
    for i in range(n):
        t = time.perf_counter()
        res = r.execute("chain3", {"i": i})
        lat.append(time.perf_counter() - t)
        check_chain3(res, "chain3", package)
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


def run_chain3(url: str, n: int, tx: TxCounter | None) -> dict[str, Any]:
    define_chain3()
    with DefaultRunner(url, max_concurrent_tasks=MAX_CONCURRENT_TASKS) as r:
        return measure_chain3(r, n, tx)


def measure_fanout(
    r: DefaultRunner, n: int, tx: TxCounter | None, package: str | None = None
) -> dict[str, Any]:
    per = max(1, n // FANOUT_THREADS)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(per):
                check_fanout(r.execute("fanout", {"i": i}), "fanout", package)
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


def run_fanout(url: str, n: int, tx: TxCounter | None) -> dict[str, Any]:
    define_fanout()
    with DefaultRunner(url, max_concurrent_tasks=MAX_CONCURRENT_TASKS) as r:
        return measure_fanout(r, n, tx)


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


# ---------------------------------------------------------------------------------------------
# The packaged form (--packaged): the same workflows in a .cloacina package
# ---------------------------------------------------------------------------------------------

PACKAGE_VERSION = "1.0.0"

# The bodies below are those of define_chain3 / define_fanout above, written out as source.
CHAIN3_SOURCE = """\
\"\"\"chain3, packaged: the task bodies of bench/workloads.py define_chain3.\"\"\"

from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="chain3", package="{package}")
class chain3:
    @task(id="collect_data")
    def collect_data(context: Context) -> None:
        context.set("raw_data", {{"records": 1000, "source": "demo_database"}})

    @task(id="process_data", dependencies=["collect_data"])
    def process_data(context: Context) -> None:
        raw = context.get("raw_data")
        context.set(
            "processed_data", {{"processed_records": 950, "original_count": raw["records"]}}
        )

    @task(id="generate_report", dependencies=["process_data"])
    def generate_report(context: Context) -> None:
        p = context.get("processed_data")
        context.set("final_report", {{"summary": {{"total_processed": p["processed_records"]}}}})
"""

SETTER_SOURCE = """
    @task(id="{task_id}", dependencies={deps!r})
    def {task_id}(context: Context) -> None:
        context.set({key!r}, {value!r})
"""


def fanout_source(package: str, width: int = FANOUT_WIDTH) -> str:
    """define_fanout's workflow as source: every body sets one key, as ``_setter`` does."""
    leaves = [f"leaf_{i}" for i in range(width)]
    tasks: list[tuple[str, list[str], str, Any]] = [("root", [], "seed", 1)]
    tasks += [(leaves[i], ["root"], f"leaf_{i}", i) for i in range(width)]
    tasks.append(("join", leaves, "joined", True))
    head = (
        '"""fanout, packaged: the task bodies of bench/workloads.py define_fanout."""\n\n'
        "from cloacina import Context, packaged_workflow, task\n\n\n"
        f'@packaged_workflow(name="fanout", package="{package}")\n'
        "class fanout:"
    )
    body = "".join(SETTER_SOURCE.format(task_id=t, deps=d, key=k, value=v) for t, d, k, v in tasks)
    return head + body


def write_project(root: Path, scenario: str) -> str:
    """A workflow project for ``scenario`` under ``root``; returns its package name."""
    package = f"cloacina_bench_{scenario}"
    source = (
        CHAIN3_SOURCE.format(package=package) if scenario == "chain3" else fanout_source(package)
    )
    (root / "src" / package).mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        "[project]\n"
        f'name = "{package}"\n'
        f'version = "{PACKAGE_VERSION}"\n'
        f'description = "bench/workloads.py {scenario}, packaged"\n'
        'requires-python = ">=3.11"\n'
        "dependencies = []\n\n"
        "[tool.cloacina]\n"
        f'modules = ["{package}.flows"]\n'
    )
    (root / "src" / package / "__init__.py").write_text("")
    (root / "src" / package / "flows.py").write_text(source)
    return package


def build_archive(tmp: Path, scenario: str) -> tuple[str, bytes]:
    """Write and build the packaged project of ``scenario``: (package name, archive bytes)."""
    from cloacina.packaging.build import build_package

    project = tmp / f"project-{scenario}"
    package = write_project(project, scenario)
    path = build_package(project, tmp / "dist", log=lambda msg: None)
    return package, path.read_bytes()


def child_processes() -> list[int]:
    """The pids of this process's live children (the package's worker processes)."""
    me, pids = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == me:
            pids.append(int(entry.name))
    return pids


def worker_memory() -> dict[str, Any]:
    """How many worker processes are alive, and the sum of their peak RSS (VmHWM)."""
    pids, kib = child_processes(), 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    kib += int(line.split()[1])
        except OSError:
            continue
    return {"worker_processes": len(pids), "worker_rss_mb": round(kib / 1024, 1)}


ONE_RUN: dict[str, Callable[[DefaultRunner, str | None], None]] = {
    "chain3": lambda r, pkg: check_chain3(r.execute("chain3", {"i": -1}), "chain3 first", pkg),
    "fanout": lambda r, pkg: check_fanout(r.execute("fanout", {"i": -1}), "fanout first", pkg),
}
DEFINE: dict[str, Callable[[], None]] = {"chain3": define_chain3, "fanout": define_fanout}
Measure = Callable[[DefaultRunner, int, TxCounter | None, str | None], dict[str, Any]]
MEASURE: dict[str, Measure] = {"chain3": measure_chain3, "fanout": measure_fanout}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def run_packaged(
    scenario: str, url_for: Callable[[str], str], n: int, tx: TxCounter | None, first_runs: int
) -> dict[str, Any]:
    """``scenario`` in its packaged form; see the module docstring for what is timed."""
    with tempfile.TemporaryDirectory(prefix="cloacina-bench-pkg-") as tmp:
        package, archive = build_archive(Path(tmp), scenario)  # not timed
    DEFINE[scenario]()  # the embedded form, for its first run
    one = ONE_RUN[scenario]

    def fresh_runner(tag: str) -> DefaultRunner:
        return DefaultRunner(url_for(tag), max_concurrent_tasks=MAX_CONCURRENT_TASKS)

    # Warm this process up (imports, statement caches...) so that neither measured form pays
    # one-off costs of the process that the other then skips.
    with fresh_runner("primer") as r:
        one(r, None)

    emb, reg, pkg, workers = [], [], [], 0
    runner: DefaultRunner | None = None
    try:
        for k in range(first_runs):
            with fresh_runner(f"embedded-{k}") as r:
                t = time.perf_counter()
                one(r, None)
                emb.append(time.perf_counter() - t)
            if runner is not None:
                runner.shutdown()
            runner = fresh_runner(f"packaged-{k}")
            t = time.perf_counter()
            runner.register_workflow(archive)
            reg.append(time.perf_counter() - t)
            t = time.perf_counter()
            one(runner, package)
            pkg.append(time.perf_counter() - t)
            workers = len(child_processes())  # started by this first run
        assert runner is not None
        # The usual measurement, on the last runner: its package's processes are up.
        fig = MEASURE[scenario](runner, n, tx, package)
        fig.update(worker_memory())
    finally:
        if runner is not None:
            runner.shutdown()
    fig.update(
        form="packaged",
        package_bytes=len(archive),
        register_ms=ms(statistics.median(reg)),
        first_run_ms=ms(statistics.median(pkg)),
        embedded_first_run_ms=ms(statistics.median(emb)),
        first_run_overhead_ms=ms(statistics.median(p - e for p, e in zip(pkg, emb, strict=True))),
        first_run_workers=workers,
        first_runs=first_runs,
        register_ms_all=[ms(x) for x in reg],
        first_run_ms_all=[ms(x) for x in pkg],
        embedded_first_run_ms_all=[ms(x) for x in emb],
    )
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
    ap.add_argument(
        "--packaged",
        action="store_true",
        help=f"run the packaged form of the workflow ({', '.join(PACKAGED_SCENARIOS)})",
    )
    ap.add_argument(
        "--first-runs",
        type=int,
        default=FIRST_RUNS,
        help="--packaged: first runs timed per form, each on a fresh runner and database\n"
        "(default %(default)s; with --db the same database is used for all)",
    )
    a = ap.parse_args(argv)
    if a.packaged and a.scenario not in PACKAGED_SCENARIOS:
        ap.error(f"--packaged is for {', '.join(PACKAGED_SCENARIOS)} only")
    if a.first_runs < 1:
        ap.error("--first-runs must be >= 1")
    n = a.n or DEFAULT_N[a.scenario]
    with database(a.db) as url:
        tx = None
        if a.count_tx:
            tx = TxCounter()
            tx.install(url)
        if a.packaged:
            fig = run_packaged(a.scenario, fresh_databases(url, a.db), n, tx, a.first_runs)
        else:
            fig = RUNNERS[a.scenario](url, n, tx)
    emit(**fig)


def fresh_databases(url: str, given: str | None) -> Callable[[str], str]:
    """A database URL per tag: a new SQLite file next to the default one, else ``given``."""
    if given:
        return lambda tag: given
    folder = url.removeprefix("sqlite:///").rsplit("/", 1)[0]
    return lambda tag: f"sqlite:///{folder}/{tag}.db"


if __name__ == "__main__":
    main()
