"""cloaca's performance scenario (its suite's file 12) on cloacina.compat.cloaca and on
cloaca 0.3.1 itself, side by side: the same script, the same workflow, one after another.

    python bench/compat_cloaca.py              # both, 1 + 5 runs as file 12 does, then --n more
    python bench/compat_cloaca.py --n 50       # more sequential runs for the median
    python bench/compat_cloaca.py --peer PATH  # cloaca's Python (/tmp/cloaca-peer/bin/python)

The workflow is file 12's ``comprehensive_perf_workflow``: one task that records timings and
sleeps 10 ms, run once, then 5 times in a row (what the file asserts: under 5 s and 25 s),
then ``--n`` more times for the latency figures. Each engine runs in its own process on a
fresh SQLite file. The cloaca peer is built by ``shared/peers/cloaca/setup.sh`` (see
shared/BENCHMARKS.md); without it only this engine's numbers are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_PEER = os.environ.get("CLOACINA_CLOACA_PEER", "/tmp/cloaca-peer/bin/python")
PEERS_DIR = Path(os.environ.get("CLOACINA_PEERS_DIR", "/work/shared/peers"))
TARGET = 20.0


def workload(cloaca: Any, url: str, n: int) -> dict[str, Any]:
    """File 12's workflow and runs on ``cloaca`` (the real module or the compat one)."""
    with cloaca.WorkflowBuilder("comprehensive_perf_workflow") as builder:
        builder.description("Comprehensive performance test workflow")

        @cloaca.task(id="perf_task")  # type: ignore[untyped-decorator]
        def perf_task(context: Any) -> Any:
            execution_id = context.get("execution_id", 0)
            start_time = time.time()
            context.set("task_start_time", start_time)
            context.set("perf_task_executed", True)
            context.set("execution_id", execution_id)
            time.sleep(0.01)  # 10ms of work
            end_time = time.time()
            context.set("task_end_time", end_time)
            context.set("task_duration", end_time - start_time)
            return context

    started = time.perf_counter()
    runner = cloaca.DefaultRunner(url)
    startup = time.perf_counter() - started

    def run(i: int, kind: str) -> float:
        t0 = time.perf_counter()
        result = runner.execute(
            "comprehensive_perf_workflow",
            cloaca.Context({"execution_id": i, "test_type": kind}),
        )
        took = time.perf_counter() - t0
        if result.status != "Completed" or result.error_message is not None:
            raise SystemExit(f"run {i} ended {result.status}: {result.error_message}")
        return took

    try:
        single = run(0, "single_timing")
        t0 = time.perf_counter()
        for i in range(5):
            run(i, "multi_performance")
        five = time.perf_counter() - t0
        latencies = [run(i, "latency") for i in range(n)]
    finally:
        runner.shutdown()
    return {
        "startup_s": startup,
        "single_s": single,
        "five_sequential_s": five,
        "median_ms": statistics.median(latencies) * 1000 if latencies else None,
        "p95_ms": sorted(latencies)[int(0.95 * (len(latencies) - 1))] * 1000 if latencies else None,
        "runs": 6 + n,
    }


def worker(engine: str, n: int) -> None:
    """Run the workload in this process and print one JSON line."""
    if engine == "compat":
        import cloacina.compat.cloaca as cloaca
    else:
        import cloaca  # type: ignore[import-not-found, no-redef]
    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as tmp:
        url = f"sqlite://{Path(tmp) / 'bench.db'}"  # cloaca's form: sqlite:// + an absolute path
        out = workload(cloaca, url, n)
    print(json.dumps({"engine": engine, **out}), flush=True)


def measure(python: str, engine: str, n: int) -> dict[str, Any]:
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", engine, "--n", str(n)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{engine} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=20, help="runs after file 12's six (default 20)")
    ap.add_argument("--peer", default=DEFAULT_PEER, help="the Python that has cloaca 0.3.1")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--worker", choices=["compat", "cloaca"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.n)
        return
    ours = measure(sys.executable, "compat", args.n)
    peer: dict[str, Any] | None = None
    if Path(args.peer).exists():
        peer = measure(args.peer, "cloaca", args.n)
    rows = [
        ("file 12: one run (s)", "single_s", 3),
        ("file 12: five runs in a row (s)", "five_sequential_s", 3),
        ("per run, median (ms)", "median_ms", 1),
        ("per run, p95 (ms)", "p95_ms", 1),
    ]
    print(f"{'':34} {'compat':>10} {'cloaca 0.3.1':>14} {'speed-up':>9}")
    for label, key, digits in rows:
        mine = ours[key]
        theirs = None if peer is None else peer[key]
        ratio = f"{theirs / mine:.1f}x" if theirs and mine else "-"
        shown = "-" if theirs is None else f"{theirs:.{digits}f}"
        print(f"{label:34} {mine:>10.{digits}f} {shown:>14} {ratio:>9}")
    if peer is not None:  # what is left once the task's own 10 ms of sleep is taken away
        mine, theirs = ours["median_ms"] - 10.0, peer["median_ms"] - 10.0
        print(
            f"{'engine time per run (ms)':34} {mine:>10.1f} {theirs:>14.1f} {theirs / mine:>8.0f}x"
        )
    if peer is None:
        print(
            f"\ncloaca 0.3.1 not found at {args.peer}: build it with "
            f"`bash {PEERS_DIR / 'cloaca' / 'setup.sh'}` (see shared/BENCHMARKS.md), or pass "
            "--peer /path/to/python; only cloacina.compat.cloaca was measured."
        )
    else:
        five = peer["five_sequential_s"] / ours["five_sequential_s"]
        verdict = "meets" if five >= TARGET else "MISSES"
        print(
            f"\nfile 12's workload: {five:.1f}x faster than cloaca 0.3.1 ({verdict} >= {TARGET:g}x)"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"compat": ours, "cloaca": peer}, indent=2))


if __name__ == "__main__":
    main()
