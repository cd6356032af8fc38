"""Run control (DESIGN §11): the targets of issue 13 for reruns and idempotency keys, one
JSON line per scenario and a table of figures beside their targets.

    python bench/run_control.py rerun --n 20          # chain100 whose last task fails, rerun
    python bench/run_control.py idempotency --n 1000  # one key from 8 threads, 1,000 submits
    python bench/run_control.py all [--db URL] [--json FILE]

``rerun``: a chain of 100 tasks whose last task fails (not retried); the run is rerun (its
failed task only, nothing downstream of it) and awaited. Figure: the time from ``rerun()``
to the run's end, median and p95 over ``--n`` runs; every task body counts its calls, and
no upstream body may run again. Target: <= 10 ms, 0 upstream bodies.

``idempotency``: ``--n`` submissions of one key with one context from 8 threads at once
(a barrier starts them together) on a runner that executes, after a warm-up burst of
another key (a pool's connections opened). Figures: the runs made (must be
exactly 1; every submit must get its id) and the submits' p50/p99. Target: 1 run, p99 <=
5 ms. Beside it, for scale: the same number of submissions without a key, and with a new key
each (what a key costs a submission that makes a run).

The default database is a fresh SQLite file in a temporary directory (``--db`` for another,
e.g. PostgreSQL). On SQLite, DBOS 3.4.0 runs the same two scenarios beside (see
bench/run_control_dbos.py; ``--no-peers`` skips it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    from cloacina import Context, DefaultRunner, TaskError, task, workflow
except ImportError:  # not installed: run straight from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from cloacina import Context, DefaultRunner, TaskError, task, workflow


CHAIN = 100
THREADS = 8
TARGETS = {"rerun_ms": 10.0, "submit_p99_ms": 5.0}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="cloacina-bench-rc-") as tmp:
        yield f"sqlite:///{tmp}/bench.db"


# ---- rerun ---------------------------------------------------------------------------------
def define_failing_chain(calls: list[int], broken: list[bool]) -> str:
    """chain100 whose last task fails while ``broken[0]``; ``calls[i]`` counts task i's body."""
    name = "rc_chain100"

    def body(i: int) -> Any:
        def run(context: Context) -> None:
            calls[i] += 1
            if i == CHAIN - 1 and broken[0]:
                raise TaskError("the last step broke", retryable=False)
            context.set(f"c_{i}", i)

        run.__name__ = f"c_{i}"
        return run

    namespace: dict[str, Any] = {}
    for i in range(CHAIN):
        deps = [f"c_{i - 1}"] if i else []
        namespace[f"c_{i}"] = task(id=f"c_{i}", dependencies=deps)(body(i))
    workflow(name=name)(type(name, (), namespace))
    return name


def run_rerun(url: str, n: int) -> dict[str, Any]:
    calls = [0] * CHAIN
    broken = [True]
    name = define_failing_chain(calls, broken)
    times: list[float] = []
    upstream_again = 0
    with DefaultRunner(url, max_concurrent_tasks=8) as runner:
        for rep in range(n + 2):  # 2 warm-up reruns
            broken[0] = True
            first = runner.execute(name, timeout=120)
            assert first.status == "failed", first.error
            before = list(calls)
            broken[0] = False
            start = time.perf_counter()
            runner.rerun(first.execution_id)
            result = runner.wait(first.execution_id, timeout=60)
            took = (time.perf_counter() - start) * 1000
            assert result.status == "completed", result.error
            assert result.final_context[f"c_{CHAIN - 1}"] == CHAIN - 1
            upstream_again += sum(calls[i] - before[i] for i in range(CHAIN - 1))
            assert calls[CHAIN - 1] - before[CHAIN - 1] == 1
            if rep >= 2:
                times.append(took)
    return {
        "scenario": "rerun",
        "runs": n,
        "rerun_ms_p50": round(statistics.median(times), 2),
        "rerun_ms_p95": round(_pct(times, 0.95), 2),
        "upstream_bodies_rerun": upstream_again,
    }


# ---- idempotency ---------------------------------------------------------------------------
def _burst(runner: DefaultRunner, name: str, n: int, key_of: Any) -> tuple[list[float], list[str]]:
    """``n`` submissions from 8 threads started together; their latencies (ms) and ids."""
    barrier = threading.Barrier(THREADS)
    lat: list[float] = []
    ids: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(t: int) -> None:
        mine: list[float] = []
        got: list[str] = []
        try:
            barrier.wait(30)
            for i in range(t, n, THREADS):
                start = time.perf_counter()
                eid = runner.schedule_workflow(name, {"order": 42}, idempotency_key=key_of(i))
                mine.append((time.perf_counter() - start) * 1000)
                got.append(eid)
        except BaseException as exc:
            errors.append(exc)
        with lock:
            lat.extend(mine)
            ids.extend(got)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return lat, ids


def run_idempotency(url: str, n: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]  # a database used before holds other runs and keys
    name = f"rc_keyed_{tag}"

    @workflow(name=name)
    class keyed:
        @task()
        def only(context: Context) -> None:
            context.set("done", True)

    with DefaultRunner(url, max_concurrent_tasks=8) as runner:
        # Warm up: a run, and a burst of another key (PostgreSQL's pool opens its
        # connections on demand: 20 to 150 ms each, not what a submission costs).
        runner.execute(name, {"warm": True}, timeout=60)
        _burst(runner, name, 200, lambda i: f"warm-up-{tag}")
        lat, ids = _burst(runner, name, n, lambda i: f"order-42-{tag}")
        runs = runner.list_executions_page(workflow_name=name, limit=500).items
        made = len(runs) - 2  # the warm-up runs
        one = len(set(ids)) == 1 and len(ids) == n and made == 1
        plain, _ = _burst(runner, name, n, lambda i: None)
        fresh, _ = _burst(runner, name, n, lambda i: f"new-{tag}-{i}")
    return {
        "scenario": "idempotency",
        "submits": n,
        "threads": THREADS,
        "runs_made": made,
        "one_id_for_all": one,
        "submit_ms_p50": round(statistics.median(lat), 3),
        "submit_ms_p99": round(_pct(lat, 0.99), 3),
        "no_key_ms_p50": round(statistics.median(plain), 3),
        "no_key_ms_p99": round(_pct(plain, 0.99), 3),
        "new_key_ms_p50": round(statistics.median(fresh), 3),
        "new_key_ms_p99": round(_pct(fresh, 0.99), 3),
    }


DBOS_PYTHON = Path("/tmp/dbos-peer/bin/python")  # made by /work/shared/peers/dbos/setup.sh


def run_dbos(scenario: str, n: int) -> dict[str, Any] | None:
    """The scenario on DBOS (bench/run_control_dbos.py on a fresh SQLite file), or None
    when its virtual environment is missing."""
    if not DBOS_PYTHON.exists():
        print(f"DBOS skipped: no {DBOS_PYTHON} (run /work/shared/peers/dbos/setup.sh)")
        return None
    script = Path(__file__).resolve().parent / "run_control_dbos.py"
    proc = subprocess.run(
        [str(DBOS_PYTHON), str(script), scenario, "--n", str(n)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"DBOS {scenario} failed: {proc.stderr[-2000:]}")
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def beside(ours: dict[str, Any], peer: dict[str, Any] | None) -> str:
    """Our figures beside DBOS's (its surgical rerun is ``fork_workflow`` from the failed
    step, under a new id; its idempotency key is the workflow id)."""
    if peer is None:
        return ""
    keys = [k for k in ours if k in peer and k not in ("scenario", "system")]
    rows = [("figure", "cloacina", "DBOS 3.4.0")]
    rows += [(k, str(ours[k]), str(peer[k])) for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def table(results: list[dict[str, Any]]) -> str:
    rows = [("figure", "measured", "target", "met")]
    for r in results:
        if r["scenario"] == "rerun":
            ms = r["rerun_ms_p50"]
            rows.append(("rerun of chain100's last task, p50 ms", f"{ms}", "<= 10", _ok(ms <= 10)))
            rows.append(("  p95 ms", f"{r['rerun_ms_p95']}", "", ""))
            again = r["upstream_bodies_rerun"]
            rows.append(("upstream bodies run again", f"{again}", "0", _ok(again == 0)))
        else:
            made = r["runs_made"]
            rows.append(
                (f"runs from {r['submits']} submits of one key", f"{made}", "1", _ok(made == 1))
            )
            p99 = r["submit_ms_p99"]
            rows.append(("submit p99 ms (the same key)", f"{p99}", "<= 5", _ok(p99 <= 5)))
            rows.append(("  p50 ms", f"{r['submit_ms_p50']}", "", ""))
            rows.append(
                ("  no key: p50 / p99 ms", f"{r['no_key_ms_p50']} / {r['no_key_ms_p99']}", "", "")
            )
            rows.append(
                (
                    "  a new key each: p50 / p99 ms",
                    f"{r['new_key_ms_p50']} / {r['new_key_ms_p99']}",
                    "",
                    "",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenario", choices=["rerun", "idempotency", "all"])
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument(
        "--no-peers", action="store_true", help="without DBOS beside (always so with --db)"
    )
    args = ap.parse_args()
    results = []
    peers: list[dict[str, Any] | None] = []
    for scenario, run, n in (("rerun", run_rerun, 20), ("idempotency", run_idempotency, 1000)):
        if args.scenario not in (scenario, "all"):
            continue
        with database(args.db) as url:
            results.append(run(url, args.n or n))
            print(json.dumps(results[-1]), flush=True)
        peer = None if args.no_peers or args.db else run_dbos(scenario, args.n or n)
        if peer is not None:
            print(json.dumps(peer), flush=True)
        peers.append(peer)
    print()
    print(table(results))
    for ours, peer in zip(results, peers, strict=True):
        if peer is not None:
            print()
            print(f"{ours['scenario']}, beside DBOS:")
            print(beside(ours, peer))
    if args.json:
        Path(args.json).write_text(json.dumps({"cloacina": results, "dbos": peers}, indent=2))


if __name__ == "__main__":
    main()
