"""Dynamic fan-out (DESIGN §11, ``map_over``): issue 13's "must reach" on SQLite.

A three-task workflow (``make`` puts N integers in the context, ``process`` maps a trivial
task over them, ``total`` reads the list of N results) run end to end by one runner: the
instances per second (N over the time from submit to the run's end), the runner's peak RSS,
and how the time grows from 10,000 to 100,000 items. Each size runs in a fresh process (its
own SQLite file in WAL), so the RSS is that size's alone. Beside DBOS 3.4.0 when its
virtual environment exists (``/work/shared/peers/dbos/setup.sh``; ``bench/map_dbos.py``:
N child workflows enqueued on a queue and joined, DBOS's form of a map).

Usage:  python bench/map.py [--n 100000] [--small 10000] [--parallel P] [--repeat R]
        [--no-peers] [--dbos-n 2000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DBOS_PYTHON = Path(os.environ.get("DBOS_PYTHON", "/tmp/dbos-peer/bin/python"))
TARGET_RATE = 5000.0  # instances per second, end to end
TARGET_RSS_MB = 300.0
TARGET_GROWTH = 12.0  # 10x the items within 12x the time


def child(n: int, parallel: int | None, slots: int) -> dict[str, Any]:
    """One map of ``n`` items in this process: its figures."""
    from cloacina import Context, DefaultRunner, task, workflow

    @workflow(name="bench_map")
    class _flow:
        @task(id="make")
        def make(context: Context) -> None:
            context.insert("items", list(range(n)))

        @task(id="process", dependencies=["make"], map_over="items", max_parallel=parallel)
        def process(context: Context) -> int:
            return int(context["item"]) + 1

        @task(id="total", dependencies=["process"])
        def total(context: Context) -> None:
            context.insert("total", sum(context["process"]))

    path = Path(tempfile.mkdtemp(prefix="cloacina-map-")) / "map.db"
    with DefaultRunner(f"sqlite:///{path}", max_concurrent_tasks=slots) as runner:
        started = time.perf_counter()
        result = runner.execute("bench_map", timeout=3600)
        took = time.perf_counter() - started
        assert result.status == "completed", result.error
        assert result.final_context["total"] == n * (n + 1) // 2
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        read_started = time.perf_counter()
        counts = runner.get_execution(result.execution_id).tasks["process"].instances
        read_ms = (time.perf_counter() - read_started) * 1000
        assert counts is not None and counts.counts == {"completed": n}
    return {
        "system": "cloacina",
        "n": n,
        "seconds": round(took, 3),
        "instances_per_s": round(n / took, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "get_execution_ms": round(read_ms, 1),
        "max_parallel": parallel,
        "slots": slots,
    }


def run_child(args: list[str], python: str = sys.executable) -> dict[str, Any]:
    out = subprocess.run([python, *args], capture_output=True, text=True, timeout=3600, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def median_of(repeat: int, args: list[str]) -> dict[str, Any]:
    """The run of median time among ``repeat`` runs of one size (each in a fresh process)."""
    runs = sorted((run_child(args) for _ in range(max(1, repeat))), key=lambda r: r["seconds"])
    return runs[len(runs) // 2]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--parallel", type=int, default=None, help="max_parallel (default none)")
    ap.add_argument("--slots", type=int, default=8, help="max_concurrent_tasks")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--dbos-n", type=int, default=2_000, help="items for DBOS (it is slow)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each size (the median)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        print(json.dumps(child(a.child, a.parallel, a.slots)), flush=True)
        return 0

    extra = ["--slots", str(a.slots)] + (
        [] if a.parallel is None else ["--parallel", str(a.parallel)]
    )
    me = str(Path(__file__).resolve())
    small = median_of(a.repeat, [me, "--child", str(a.small), *extra])
    big = median_of(a.repeat, [me, "--child", str(a.n), *extra])
    results = [small, big]
    growth = big["seconds"] / small["seconds"]
    items = a.n / a.small
    print(
        f"map over {a.n:,} items of a trivial task, SQLite, one runner ({a.slots} slots"
        f"{'' if a.parallel is None else f', max_parallel={a.parallel}'}):"
    )
    print(f"{'measure':34} {'cloacina':>12} {'target':>12}")
    rate, rss = big["instances_per_s"], big["peak_rss_mb"]
    limit = TARGET_GROWTH * items / 10
    rows = [
        ("instances/s, end to end", f"{rate:,.0f}", ">= 5,000", rate >= TARGET_RATE),
        ("peak RSS of the runner, MB", f"{rss:.0f}", "<= 300", rss <= TARGET_RSS_MB),
        (f"time {a.n:,} / time {a.small:,}", f"{growth:.2f}", f"<= {limit:g}", growth <= limit),
    ]
    for what, value, target, ok in rows:
        print(f"{what:34} {value:>12} {target:>12}  {verdict(ok)}")
    print(
        f"{f'seconds for {a.small:,} / {a.n:,}':34} {small['seconds']:.2f} / {big['seconds']:.2f}"
    )
    print(f"{'get_execution of the big run, ms':34} {big['get_execution_ms']:>12.1f}")
    if not a.no_peers:
        if DBOS_PYTHON.exists():
            peer = run_child(
                [str(HERE / "map_dbos.py"), "--n", str(a.dbos_n)], python=str(DBOS_PYTHON)
            )
            results.append(peer)
            print(
                f"DBOS 3.4.0 (queue + {a.dbos_n:,} child workflows, SQLite): "
                f"{peer['instances_per_s']:,.0f} instances/s, "
                f"peak RSS {peer['peak_rss_mb']:.0f} MB "
                f"({peer['seconds']:.2f}s); cloacina at {a.small:,}: "
                f"{small['instances_per_s']:,.0f}/s, {small['peak_rss_mb']:.0f} MB"
            )
        else:
            print(f"DBOS: no peer at {DBOS_PYTHON} (run /work/shared/peers/dbos/setup.sh)")
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
