"""bench/map.py's map on DBOS Transact 3.4.0 (its peer; run with the DBOS virtual
environment's python, see /work/shared/peers/dbos/setup.sh).

DBOS has no map task: its form of one is a workflow that enqueues one child workflow per
item on a queue and joins their results in order (as in its "wide" workload), each child's
result checkpointed in the system database.

Usage:  python bench/map_dbos.py [--n N] [--db URL]
Prints one JSON object (the keys of bench/map.py's children).
"""

import argparse
import json
import resource
import tempfile
import time

from dbos import DBOS

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=10_000)
ap.add_argument("--db", default=None)
a = ap.parse_args()
url = a.db or f"sqlite:///{tempfile.mkdtemp()}/dbos.sqlite"
DBOS(config={"name": "bench_map", "system_database_url": url, "run_admin_server": False})


@DBOS.step()
def process(item):
    return item + 1


@DBOS.workflow()
def one(item):
    return process(item)


@DBOS.step()
def make(n):
    return list(range(n))


@DBOS.workflow()
def mapped(n):
    items = make(n)
    handles = [q.enqueue(one, item) for item in items]
    return sum(h.get_result() for h in handles)


DBOS.launch()
# the queue polls every 10 ms (default 1 s), its fastest sensible setting; 8 at once, as
# cloacina's 8 slots
q = DBOS.register_queue("bench_map", worker_concurrency=8, polling_interval_sec=0.01)
started = time.perf_counter()
total = mapped(a.n)
took = time.perf_counter() - started
assert total == a.n * (a.n + 1) // 2
print(
    json.dumps(
        {
            "system": "dbos-3.4.0",
            "n": a.n,
            "seconds": round(took, 3),
            "instances_per_s": round(a.n / took, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    ),
    flush=True,
)
DBOS.destroy()
