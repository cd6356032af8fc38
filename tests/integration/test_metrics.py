"""Prometheus metrics of a runner (``runner.metrics_text()``), parsed with prometheus-client's
own parser, on SQLite and PostgreSQL: the counters match what ran (and what the database
recorded), the gauges read the database, the pool and the package processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from cloacina import Context, DefaultRunner, TaskError, task, workflow

from .conftest import FAST, FAST_RETRY, RunnerFactory

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(runner: DefaultRunner) -> Samples:
    """Every sample of the runner's metrics: (name, sorted labels) -> value."""
    text = runner.metrics_text().decode("utf-8")
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_after(runner: DefaultRunner, runs: int, timeout: float = 10.0) -> Samples:
    """The samples once ``runs`` runs are counted as finished: the engine counts a run just
    after its commit, which ``wait`` may see a moment before."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(runner)
        counted = sum(v for (n, _l), v in samples.items() if n == "cloacina_runs_finished_total")
        if counted >= runs or time.monotonic() > deadline:
            return samples
        time.sleep(0.01)


def test_counters_match_the_runs_and_the_database(
    make_runner: RunnerFactory, name: Callable[[str], str], backend: str
) -> None:
    ok_name, bad_name = name("metrics_ok"), name("metrics_bad")
    flaky_calls: dict[str, int] = {}

    @workflow(name=ok_name)
    class Ok:
        @task()
        def extract(context: Context) -> None:
            context.set("rows", 3)

        @task(dependencies=["extract"], retry=FAST_RETRY)
        def flaky(context: Context) -> None:
            run = str(context.get("run"))
            flaky_calls[run] = flaky_calls.get(run, 0) + 1
            if flaky_calls[run] == 1:  # fails once per run, then succeeds on its retry
                raise TaskError("flaky")

        @task(dependencies=["flaky"])
        def load(context: Context) -> None:
            context.set("loaded", True)

    @workflow(name=bad_name)
    class Bad:
        @task()
        def start(context: Context) -> None:
            context.set("go", 1)

        @task(dependencies=["start"], retry=FAST_RETRY)
        def boom(context: Context) -> None:
            raise TaskError("always")

        @task(dependencies=["boom"])
        def after(context: Context) -> None:
            context.set("never", True)

    runner = make_runner()
    results = [runner.execute(ok_name, {"run": i}, timeout=30) for i in range(3)]
    results += [runner.execute(bad_name, timeout=30) for _ in range(2)]
    assert [r.status for r in results] == ["completed"] * 3 + ["failed"] * 2

    samples = scrape_after(runner, 5)
    runs = "cloacina_runs_finished_total"
    tasks = "cloacina_tasks_finished_total"
    assert value(samples, runs, workflow=ok_name, outcome="completed") == 3
    assert value(samples, runs, workflow=ok_name, outcome="failed") == 0
    assert value(samples, runs, workflow=bad_name, outcome="failed") == 2
    assert value(samples, tasks, workflow=ok_name, outcome="completed") == 9
    assert value(samples, tasks, workflow=bad_name, outcome="completed") == 2
    assert value(samples, tasks, workflow=bad_name, outcome="failed") == 2
    assert value(samples, tasks, workflow=bad_name, outcome="skipped") == 2
    assert value(samples, "cloacina_task_retries_total", workflow=ok_name) == 3
    assert value(samples, "cloacina_task_retries_total", workflow=bad_name) == 4
    assert value(samples, "cloacina_task_recoveries_total", workflow=ok_name) == 0

    # The histograms saw every attempt whose body ran: what the database recorded.
    for wf, ids in ((ok_name, results[:3]), (bad_name, results[3:])):
        ran = [
            a
            for r in ids
            for a in runner.get_attempts(r.execution_id)
            if a.outcome in ("completed", "failed")
        ]
        count = value(samples, "cloacina_task_duration_seconds_count", workflow=wf)
        assert count == len(ran)
        longest = max(a.duration or 0.0 for a in ran)
        total = value(samples, "cloacina_task_duration_seconds_sum", workflow=wf)
        assert 0 < total <= sum(a.duration or 0.0 for a in ran) + 0.01 * len(ran)
        assert total >= longest * 0.5
        # Every start was seen becoming ready here (roots, dependents, retries).
        assert value(samples, "cloacina_task_queue_wait_seconds_count", workflow=wf) == len(ran)
        infinite = value(samples, "cloacina_task_duration_seconds_bucket", workflow=wf, le="+Inf")
        assert infinite == len(ran)

    assert value(samples, "cloacina_running_tasks") == 0
    assert value(samples, "cloacina_ready_tasks") == 0
    assert value(samples, "cloacina_live_workers") == 1
    assert value(samples, "cloacina_database_up") == 1
    assert value(samples, "cloacina_task_slots") == runner.settings.max_concurrent_tasks
    assert value(samples, "cloacina_process_resident_memory_bytes") > 0
    if backend == "postgres":
        assert value(samples, "cloacina_db_pool_size") == runner.settings.pool_size
        assert value(samples, "cloacina_db_pool_connections_in_use") >= 0
        assert ("cloacina_db_pool_size", ()) in samples
    else:  # SQLite opens connections as it needs them: no pool to report
        assert ("cloacina_db_pool_size", ()) not in samples
    text = runner.metrics_text().decode()
    assert runner.url.split("@")[-1] not in text  # no database URL (nor its password)


def test_gauges_read_running_tasks_and_the_ready_backlog(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    wf_name = name("metrics_gauges")
    release = threading.Event()
    started = threading.Semaphore(0)

    @workflow(name=wf_name)
    class Held:
        @task()
        def hold(context: Context) -> None:
            started.release()
            release.wait(20)

    worker = make_runner(max_concurrent_tasks=2)
    client = make_runner(execute_tasks=False)
    try:
        ids = [client.schedule_workflow(wf_name) for _ in range(5)]
        for _ in range(2):
            assert started.acquire(timeout=20)
        deadline = time.monotonic() + 10
        while True:
            samples = scrape(worker)
            if value(samples, "cloacina_ready_tasks") == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert value(samples, "cloacina_running_tasks") == 2
        assert value(samples, "cloacina_ready_tasks") == 3
        assert value(samples, "cloacina_live_workers") == 1
        # A submit-only client has the database's gauges, and no task slots of its own.
        from_client = scrape(client)
        assert value(from_client, "cloacina_ready_tasks") == 3
        assert ("cloacina_running_tasks", ()) not in from_client
    finally:
        release.set()
    for eid in ids:
        assert client.wait(eid, timeout=30).status == "completed"
    assert value(scrape(worker), "cloacina_running_tasks") == 0


def test_recoveries_are_counted(make_runner: RunnerFactory, name: Callable[[str], str]) -> None:
    """A task held by a worker that died is taken back: one recovery, then it completes."""
    wf_name = name("metrics_recover")

    @workflow(name=wf_name)
    class Once:
        @task()
        def only(context: Context) -> None:
            context.set("done", True)

    client = make_runner(execute_tasks=False)
    eid = client.schedule_workflow(wf_name)
    keys = [(wf.name, wf.version) for wf in client.catalog.all_versions()]
    with client.store.write() as tx:  # a worker (with no heartbeat row) claims it, then dies
        _direct, claimed = tx.claim_next([], 1, keys, "ghost:1:dead", time.time() - 60)
    assert [c.execution_id for c in claimed] == [eid]
    worker = make_runner(stale_claim_threshold=0.5)
    assert worker.wait(eid, timeout=30).status == "completed"
    samples = scrape_after(worker, 1)
    assert value(samples, "cloacina_task_recoveries_total", workflow=wf_name) == 1
    assert value(samples, "cloacina_tasks_finished_total", workflow=wf_name, outcome="completed")
    # Ready again from the moment it was taken back: its wait was seen too.
    assert value(samples, "cloacina_task_queue_wait_seconds_count", workflow=wf_name) == 1


def test_queue_waits_of_runs_created_elsewhere_are_read_at_the_scrape(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    """A worker that did not see a run created (a client made it) reads when its roots
    became ready from the database at the next scrape; its dependents it saw itself."""
    wf_name = name("metrics_elsewhere")

    @workflow(name=wf_name)
    class Pair:
        @task()
        def first(context: Context) -> None:
            context.set("a", 1)

        @task(dependencies=["first"])
        def second(context: Context) -> None:
            context.set("b", 2)

    client = make_runner(execute_tasks=False)
    ids = [client.schedule_workflow(wf_name) for _ in range(3)]
    time.sleep(0.3)  # they wait in the queue: no worker yet
    worker = make_runner()
    for eid in ids:
        assert worker.wait(eid, timeout=30).status == "completed"
    samples = scrape_after(worker, 3)
    assert value(samples, "cloacina_task_queue_wait_seconds_count", workflow=wf_name) == 6
    waited = value(samples, "cloacina_task_queue_wait_seconds_sum", workflow=wf_name)
    assert 3 * 0.3 <= waited < 3 * 30  # the roots waited for the worker to start
    # Observed once: the next scrape does not count them again.
    again = scrape(worker)
    assert value(again, "cloacina_task_queue_wait_seconds_count", workflow=wf_name) == 6


def test_each_runner_has_its_own_registry(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    wf_name = name("metrics_two")

    @workflow(name=wf_name)
    class One:
        @task()
        def a(context: Context) -> None:
            context.set("a", 1)

    first = make_runner()
    for _ in range(2):
        assert first.execute(wf_name, timeout=30).status == "completed"
    done = "cloacina_runs_finished_total"
    assert value(scrape_after(first, 2), done, workflow=wf_name, outcome="completed") == 2
    first.shutdown()  # so that the second runner runs its own run
    second = make_runner()
    assert second.execute(wf_name, timeout=30).status == "completed"
    assert value(scrape_after(second, 1), done, workflow=wf_name, outcome="completed") == 1


def test_package_processes_and_their_memory(
    make_package: Callable[..., bytes], sqlite_url: str, tmp_path: Path
) -> None:
    """(On SQLite only: package processes do not depend on the database.)"""
    source = textwrap.dedent(
        """
        from cloacina import Context, packaged_workflow, task

        @packaged_workflow(name="metered", package="metered_pkg")
        class metered:
            @task()
            def work(context: Context) -> None:
                context.set("ok", True)
        """
    )
    archive = make_package(
        tmp_path, "metered_pkg", "1.0.0", {"metered_flows.py": source}, ["metered_flows"]
    )
    with DefaultRunner(sqlite_url, **{**FAST, "stale_claim_threshold": 1.0}) as runner:
        runner.register_workflow(archive)
        assert runner.execute("metered", timeout=60).status == "completed"
        samples = scrape_after(runner, 1)
    labels = {"package": "metered_pkg", "version": "1.0.0"}
    assert value(samples, "cloacina_package_processes", **labels) == 1
    assert value(samples, "cloacina_package_process_resident_bytes", **labels) > 1_000_000


def test_without_prometheus_client_a_runner_works_and_says_what_to_install(
    tmp_path: Path,
) -> None:
    """A runner in a process without prometheus-client runs workflows; metrics_text names
    the extra to install."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["prometheus_client"] = None  # as if it were not installed
        from cloacina import Context, DefaultRunner, UnavailableError, task, workflow

        @workflow(name="plain")
        class plain:
            @task()
            def a(context: Context) -> None:
                context.set("a", 1)

        with DefaultRunner("sqlite:///{tmp_path / "p.db"}") as runner:
            assert runner.execute("plain", timeout=30).status == "completed"
            try:
                runner.metrics_text()
            except UnavailableError as exc:
                print("ERROR:", exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "ERROR: metrics need the prometheus-client library" in proc.stdout
    assert "pip install 'cloacina[server]'" in proc.stdout
