"""bench/run_control.py's two scenarios on DBOS Transact 3.4.0 (its peer; run with the
DBOS virtual environment's python, see /work/shared/peers/dbos/setup.sh).

DBOS has both features in its own form: a workflow ID is an idempotency key (starting a
workflow under an ID that exists returns that workflow), and ``DBOS.fork_workflow(id,
start_step)`` restarts a workflow from a step, under a new ID, the steps before it reusing
their checkpointed outputs: the nearest thing to a surgical rerun.

Usage:  python bench/run_control_dbos.py {rerun,idempotency} [--db URL] [--n N]
Prints one JSON object per line (the keys of bench/run_control.py's).
"""

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid

from dbos import DBOS, SetWorkflowID

ap = argparse.ArgumentParser()
ap.add_argument("scenario", choices=["rerun", "idempotency"])
ap.add_argument("--db", default=None)
ap.add_argument("--n", type=int, default=None)
a = ap.parse_args()
url = a.db or f"sqlite:///{tempfile.mkdtemp()}/dbos.sqlite"
DBOS(config={"name": "bench_rc", "system_database_url": url, "run_admin_server": False})

CHAIN = 100
THREADS = 8
calls = [0] * CHAIN
broken = [True]


@DBOS.step()
def link(ctx, i):
    calls[i] += 1
    if i == CHAIN - 1 and broken[0]:
        raise RuntimeError("the last step broke")
    return {**ctx, f"c_{i}": i}


@DBOS.workflow()
def chain(ctx):
    for i in range(CHAIN):
        ctx = link(ctx, i)
    return ctx


@DBOS.step()
def only(ctx):
    return {**ctx, "done": True}


@DBOS.workflow()
def keyed(ctx):
    return only(ctx)


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def emit(**kw):
    kw["system"] = "dbos-3.4.0"
    print(json.dumps(kw), flush=True)


def run_rerun(n):
    times = []
    upstream = 0
    for rep in range(n + 2):
        broken[0] = True
        wid = str(uuid.uuid4())
        with SetWorkflowID(wid):
            handle = DBOS.start_workflow(chain, {})
        try:
            handle.get_result()
            raise SystemExit("the chain should have failed")
        except RuntimeError:
            pass
        steps = DBOS.list_workflow_steps(wid)
        failed = [s for s in steps if s.get("error") is not None]
        start_step = failed[-1]["function_id"]
        before = list(calls)
        broken[0] = False
        t0 = time.perf_counter()
        forked = DBOS.fork_workflow(wid, start_step)
        out = forked.get_result()
        took = (time.perf_counter() - t0) * 1000
        assert out[f"c_{CHAIN - 1}"] == CHAIN - 1, out
        upstream += sum(calls[i] - before[i] for i in range(CHAIN - 1))
        if rep >= 2:
            times.append(took)
    emit(
        scenario="rerun",
        runs=n,
        rerun_ms_p50=round(statistics.median(times), 2),
        rerun_ms_p95=round(pct(times, 0.95), 2),
        upstream_bodies_rerun=upstream,
    )


def burst(n, key_of):
    barrier = threading.Barrier(THREADS)
    lat, ids, errors = [], [], []
    lock = threading.Lock()

    def work(t):
        mine, got = [], []
        try:
            barrier.wait(30)
            for i in range(t, n, THREADS):
                t0 = time.perf_counter()
                key = key_of(i)
                if key is None:
                    handle = DBOS.start_workflow(keyed, {"order": 42})
                else:
                    with SetWorkflowID(key):
                        handle = DBOS.start_workflow(keyed, {"order": 42})
                mine.append((time.perf_counter() - t0) * 1000)
                got.append(handle.workflow_id)
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


def run_idempotency(n):
    tag = uuid.uuid4().hex[:8]
    keyed({"warm": True})
    burst(200, lambda i: f"warm-up-{tag}")
    lat, ids = burst(n, lambda i: f"order-42-{tag}")
    one = len(set(ids)) == 1 and len(ids) == n
    made = len(DBOS.list_workflows(workflow_ids=[f"order-42-{tag}"]))
    plain, _ = burst(n, lambda i: None)
    fresh, _ = burst(n, lambda i: f"new-{tag}-{i}")
    emit(
        scenario="idempotency",
        submits=n,
        threads=THREADS,
        runs_made=made,
        one_id_for_all=one,
        submit_ms_p50=round(statistics.median(lat), 3),
        submit_ms_p99=round(pct(lat, 0.99), 3),
        no_key_ms_p50=round(statistics.median(plain), 3),
        no_key_ms_p99=round(pct(plain, 0.99), 3),
        new_key_ms_p50=round(statistics.median(fresh), 3),
        new_key_ms_p99=round(pct(fresh, 0.99), 3),
    )


DBOS.launch()
try:
    if a.scenario == "rerun":
        run_rerun(a.n or 20)
    else:
        run_idempotency(a.n or 1000)
finally:
    DBOS.destroy()
