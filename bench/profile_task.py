"""Where does a task's time go?  chain100 on cloacina under cProfile, in every thread.

    python bench/profile_task.py [--n 100] [--db URL] [--top 25] [--sort cumulative]
                                 [--out FILE.pstats]

The engine runs tasks in worker threads (and maybe an event loop thread), so profiling
only the caller of ``execute`` would show nothing but a wait. Here a ``cProfile.Profile``
is started in every thread the engine creates (through ``threading.setprofile``) and the
statistics of all threads are merged. Waiting shows up too (``acquire`` of a lock,
``select``, ``queue.get``): in a chain only one task runs at a time, so idle worker threads
add wait time; read ``tottime`` for where CPU goes and ``cumtime`` for what a call costs.

Prints the top functions by cumulative time, then by own time without the blocking waits,
then the time per step spent in the database driver's calls and in the task bodies.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # bench/workloads.py, next to this file

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()
_active = threading.Event()


def _start_in_thread(frame: Any, event: str, arg: Any) -> None:
    """Profile hook of every new thread: once measuring starts, start a profiler there."""
    if _active.is_set():
        prof = cProfile.Profile()
        with _lock:
            _profiles.append(prof)
        prof.enable()  # replaces this hook for the thread


# C calls in which a thread blocks (waiting for work or for a wake-up), not CPU spent
WAITS = (
    "acquire' of '_thread.lock",
    "acquire' of '_thread.RLock",
    "get' of '_queue.SimpleQueue",
    "time.sleep",
    "select.select",
    "of 'select.epoll",
    "of 'select.poll",
)


def drop_waits(stats: pstats.Stats) -> float:
    """Remove blocking C calls from ``stats``; returns their own time in seconds."""
    raw: dict[Any, Any] = stats.stats
    waits = [k for k in raw if k[0] == "~" and any(w in k[2] for w in WAITS)]
    total = sum(raw[k][2] for k in waits)
    for k in waits:
        del raw[k]
    return total


def driver_summary(stats: pstats.Stats, steps: int) -> list[tuple[str, float, float]]:
    """Own time per step (ms) and calls per step of a few groups that matter per task."""
    groups: dict[str, list[float]] = {}
    raw: dict[Any, Any] = stats.stats
    total = 0.0
    for (filename, _line, name), (_cc, nc, tt, ct, _callers) in raw.items():
        total += tt
        label = None
        if "sqlite3.Connection" in name or "sqlite3.Cursor" in name:
            parts = name.split("'")
            label = f"sqlite3 {parts[1] if len(parts) > 1 else name}"
        elif "psycopg" in filename and name in ("execute", "commit"):
            label = f"psycopg {name}"
        elif filename.endswith(("json/encoder.py", "json/decoder.py")):
            label = "json encode/decode"
        elif "'_socket.socket'" in name and ("'send'" in name or "'recv'" in name):
            label = "event-loop wake-ups (socket send/recv)"
        elif "put' of '_queue.SimpleQueue" in name:
            label = "thread hand-offs (queue put)"
        elif filename == workloads.__file__ and name == "body":
            label = "task bodies (cumulative)"
            tt = ct
        if label:
            g = groups.setdefault(label, [0.0, 0])
            g[0] += tt
            g[1] += nc
    rows = [(k, v[0] * 1000 / steps, v[1] / steps) for k, v in groups.items()]
    rows.sort(key=lambda x: -x[1])
    return [("all own time, waits left out", total * 1000 / steps, 0.0), *rows]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="tasks in the chain (default 100)")
    ap.add_argument("--db", default=None, help="database URL (default: a temp SQLite file)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=1, help="unprofiled runs first (default 1)")
    ap.add_argument("--sort", default="cumulative", help="pstats sort key for the first list")
    ap.add_argument("--out", type=Path, default=None, help="also dump the merged .pstats")
    a = ap.parse_args(argv)

    workloads.define_chain(a.n)
    with tempfile.TemporaryDirectory(prefix="cloacina-profile-") as tmp:
        url = a.db or f"sqlite:///{tmp}/bench.db"
        # Threads started from here on get the hook; it starts their profiler at their first
        # event after _active is set, i.e. after the warm-up run.
        threading.setprofile(_start_in_thread)
        main_prof = cProfile.Profile()
        _profiles.append(main_prof)
        try:
            with workloads.DefaultRunner(url, max_concurrent_tasks=8) as r:
                for _ in range(a.warmup):  # one-off costs (schema, first statements) not counted
                    workloads.check(r.execute("chain100", {}), "chain100 warm-up")
                _active.set()
                main_prof.enable()
                t = time.perf_counter()
                res = r.execute("chain100", {})
                wall = time.perf_counter() - t
                main_prof.disable()
                workloads.check(res, "chain100")
        finally:
            threading.setprofile(None)  # type: ignore[arg-type]
        # The runner's threads are profiled until they end, so the runner's shutdown is in
        # the worker threads' figures too (threads cannot stop another thread's profiler).

    with _lock:
        profs = [p for p in _profiles if p.getstats()]
    stats = pstats.Stats(profs[0])
    for p in profs[1:]:
        stats.add(p)
    if a.out:
        stats.dump_stats(str(a.out))

    print(
        f"chain100 on {workloads.engine_version()}: {a.n} steps in {wall * 1000:.1f} ms = "
        f"{wall * 1000 / a.n:.3f} ms/step; {len(profs)} threads profiled "
        "(profiling slows everything down: compare proportions, not times)\n"
    )
    for title, key, drop in (
        (f"by {a.sort}", a.sort, False),
        ("by own time (tottime), blocking waits left out", "tottime", True),
    ):
        note = ""
        if drop:
            waited = drop_waits(stats)
            note = f" [{waited * 1000:.1f} ms of lock/queue/sleep/select waits left out]"
        buf = io.StringIO()
        stats.stream = buf
        stats.sort_stats(key).print_stats(a.top)
        print(f"=== top {a.top} {title} (all threads merged){note}")
        text = buf.getvalue()
        print((text[text.find("   ncalls") :] if "   ncalls" in text else text).rstrip() + "\n")

    print("=== per step (own time, all threads; profiled, so slower than unprofiled)")
    for label, ms, calls in driver_summary(stats, a.n):
        per = f"   {calls:6.1f} calls/step" if calls else ""
        print(f"  {label:<40} {ms:8.3f} ms/step{per}")


if __name__ == "__main__":
    main()
