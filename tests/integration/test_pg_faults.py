"""Real multi-process faults on PostgreSQL (DESIGN.md §1 "Scale-out", §4 "Durability" and
"Crash recovery", §5 "Wake-ups are pushed").

Every worker here is a process of its own (``worker_proc.py`` running
:func:`cloacina.worker.serve`), and runs are scheduled by a submit-only client in the test
process (``DefaultRunner(url, execute_tasks=False)``). Each task appends
``<task_id> <execution_id> <attempt> <pid>`` to a log file (``O_APPEND``, one ``write`` per
line) when its body starts, so exactly-once (or at-least-once, where a worker died) can be
checked across processes next to what the database recorded.

Restarting the PostgreSQL server is not allowed here (other tests share it), so
``pg_terminate_backend`` on every connection of the test's database stands in for a restart:
each connection sees the same error a restart would give it.

The long chaos test is marked ``slow`` and runs only with ``-m slow`` or ``CLOACINA_SLOW=1``.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloacina import DefaultRunner, ExecutionTimeoutError, TaskStatus

pytestmark = pytest.mark.timeout(90)

WORKER_SCRIPT = Path(__file__).with_name("worker_proc.py")
LOG_ENV = "CLOACINA_TEST_TASK_LOG"
WORKER_APP = "cloacina_test_worker"

#: The workflows of these tests, written into tmp_path as a module that the workers import
#: (and the test process too: the client schedules by name, the versions must match).
WORKFLOW_MODULE = '''\
"""Workflows of the multi-process fault tests."""

from __future__ import annotations

import os
import time

from cloacina import Context, current_task, task, workflow


def log_start() -> None:
    """Append "<task_id> <execution_id> <attempt> <pid>" to the shared log (one write)."""
    info = current_task()
    assert info is not None
    line = f"{info.task_id} {info.execution_id} {info.attempt} {os.getpid()}\\n"
    fd = os.open(os.environ["LOG_ENV"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def starts(task_id: str, execution_id: str) -> int:
    """How often this task's body has started, by the log (this start included)."""
    with open(os.environ["LOG_ENV"]) as log:
        return sum(1 for line in log if line.split()[:2] == [task_id, execution_id])


def pause(context: Context) -> None:
    time.sleep(context.get("sleep", 0.02))


@workflow(name="CHAIN_NAME")
class Chain:
    @task
    def first(context: Context) -> None:
        log_start()
        context.set("first", os.getpid())

    @task(dependencies=[first])
    def long(context: Context) -> None:
        log_start()
        info = current_task()
        assert info is not None
        # With "slow", hangs on its first run (the test kills or stops its worker); quick when
        # it runs again (recovered, or handed back).
        if context.get("slow") and starts("long", info.execution_id) == 1:
            time.sleep(60)
        context.set("long", os.getpid())

    @task(dependencies=[long])
    def last(context: Context) -> None:
        log_start()
        context.set("last", os.getpid())


@workflow(name="FANOUT_NAME")
class Fanout:
    @task
    def root(context: Context) -> None:
        log_start()
        pause(context)
        context.set("root", os.getpid())

    @task(dependencies=[root])
    def b1(context: Context) -> None:
        log_start()
        pause(context)
        context.set("b1", os.getpid())

    @task(dependencies=[root])
    def b2(context: Context) -> None:
        log_start()
        pause(context)
        context.set("b2", os.getpid())

    @task(dependencies=[root])
    def b3(context: Context) -> None:
        log_start()
        pause(context)
        context.set("b3", os.getpid())

    @task(dependencies=[root])
    def b4(context: Context) -> None:
        log_start()
        pause(context)
        context.set("b4", os.getpid())

    @task(dependencies=[b1, b2, b3, b4])
    def join(context: Context) -> None:
        log_start()
        pause(context)
        context.set("join", os.getpid())


@workflow(name="SMALL_NAME")
class Small:
    @task
    def a(context: Context) -> None:
        log_start()
        time.sleep(context.get("sleep", 0.002))

    @task(dependencies=[a])
    def b(context: Context) -> None:
        log_start()
        time.sleep(context.get("sleep", 0.002))

    @task(dependencies=[a])
    def c(context: Context) -> None:
        log_start()
        time.sleep(context.get("sleep", 0.002))

    @task(dependencies=[b, c])
    def d(context: Context) -> None:
        log_start()
'''

FANOUT_TASKS = ("root", "b1", "b2", "b3", "b4", "join")
SMALL_TASKS = ("a", "b", "c", "d")

TERMINATE_ALL = (
    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()) AS killed"
)


@dataclass(frozen=True)
class LogEntry:
    task_id: str
    execution_id: str
    attempt: int
    pid: int


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Cluster:
    """A test database, worker processes on it, and a submit-only client in this process."""

    url: str
    tmp_path: Path
    module: str
    log_path: Path
    chain: str
    fanout: str
    small: str
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    clients: list[DefaultRunner] = field(default_factory=list)
    _outputs: dict[int, tuple[Path, Path]] = field(default_factory=dict)

    @property
    def worker_url(self) -> str:
        """The workers' URL: their LISTEN connections carry an application name of their own,
        so they can be told apart from the client's in ``pg_stat_activity``."""
        return f"{self.url}?application_name={WORKER_APP}"

    # ---- processes -------------------------------------------------------------------------
    def start_worker(self, wait: bool = True, **settings: Any) -> subprocess.Popen[bytes]:
        """Start a worker process (fast timers unless overridden); wait until it is ready."""
        n = len(self.procs)
        out = self.tmp_path / f"worker-{n}.out"
        err = self.tmp_path / f"worker-{n}.err"
        with out.open("wb") as out_f, err.open("wb") as err_f:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER_SCRIPT),
                    self.worker_url,
                    str(self.tmp_path),
                    self.module,
                    json.dumps(settings),
                ],
                stdout=out_f,
                stderr=err_f,
                env=self.env,
            )
        self.procs.append(proc)
        self._outputs[proc.pid] = (out, err)
        if wait:
            self.wait_ready(proc)
        return proc

    def stderr_of(self, proc: subprocess.Popen[bytes]) -> str:
        return self._outputs[proc.pid][1].read_text(errors="replace")

    def wait_ready(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        out = self._outputs[proc.pid][0]
        deadline = time.monotonic() + timeout
        while not out.read_text().startswith("ready "):
            if proc.poll() is not None:
                pytest.fail(
                    f"worker {proc.pid} exited with {proc.returncode} before it was ready:\n"
                    f"{self.stderr_of(proc)}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"worker {proc.pid} was not ready after {timeout}s")
            time.sleep(0.02)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def stop_all(self) -> None:
        """SIGTERM every live worker (graceful), SIGKILL any that does not stop in time."""
        for proc in self.alive():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    # ---- the client and the database -------------------------------------------------------
    def client(self, **settings: Any) -> DefaultRunner:
        """A submit-only client: it schedules, waits and inspects, and executes nothing."""
        runner = DefaultRunner(self.url, execute_tasks=False, **{"poll_interval": 0.05, **settings})
        self.clients.append(runner)
        return runner

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``query`` on the test database, on a connection of its own."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            return list(conn.execute(query, params).fetchall())

    def terminate_all_connections(self) -> int:
        """Terminate every other connection to the test database (a server restart, as each
        connection sees it); returns how many were terminated."""
        return int(self.sql(TERMINATE_ALL)[0][0])

    def listeners(self) -> int:
        """Workers' connections that are LISTENing for wake-ups (one per live worker)."""
        return int(
            self.sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = %s AND starts_with(query, 'LISTEN')",
                (WORKER_APP,),
            )[0][0]
        )

    def entries(self) -> list[LogEntry]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            task_id, execution_id, attempt, pid = line.split()
            out.append(LogEntry(task_id, execution_id, int(attempt), int(pid)))
        return out


@pytest.fixture
def cluster(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    suffix = uuid.uuid4().hex[:10]
    module = f"pgfault_flows_{suffix}"
    names = {
        "CHAIN_NAME": f"pgf_chain_{suffix}",
        "FANOUT_NAME": f"pgf_fanout_{suffix}",
        "SMALL_NAME": f"pgf_small_{suffix}",
    }
    source = WORKFLOW_MODULE.replace("LOG_ENV", LOG_ENV)
    for placeholder, value in names.items():
        source = source.replace(placeholder, value)
    (tmp_path / f"{module}.py").write_text(source)
    log_path = tmp_path / "tasks.log"
    monkeypatch.setenv(LOG_ENV, str(log_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module(module)  # the client schedules these workflows by name
    cluster = Cluster(
        url=postgres_url,
        tmp_path=tmp_path,
        module=module,
        log_path=log_path,
        chain=names["CHAIN_NAME"],
        fanout=names["FANOUT_NAME"],
        small=names["SMALL_NAME"],
        env={**os.environ, LOG_ENV: str(log_path)},
    )
    try:
        yield cluster
    finally:
        try:
            cluster.stop_all()
        finally:
            for proc in cluster.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            for client in cluster.clients:
                client.shutdown(wait=False)
            sys.modules.pop(module, None)


def completion_counts(client: DefaultRunner, execution_id: str) -> Counter[str | None]:
    """How often each task's completion was recorded (``task_completed`` events)."""
    return Counter(
        e.task_id for e in client.store.get_events(execution_id) if e.event == "task_completed"
    )


def assert_exactly_once(cluster: Cluster, runs: int, tasks_per_run: int) -> tuple[int, int]:
    """Check the whole database: ``runs`` runs, all completed; every task completed, its
    completion recorded once; each run's completion recorded once; a task body ran more than
    once only where its claim was taken back from a dead worker. Returns (tasks taken back,
    task bodies re-run)."""
    by_status = cluster.sql("SELECT status, count(*) FROM workflow_executions GROUP BY status")
    assert by_status == [("completed", runs)], by_status
    task_rows = cluster.sql(
        "SELECT execution_id, task_id, status, recovery_count FROM task_executions"
    )
    assert len(task_rows) == runs * tasks_per_run
    assert {row[2] for row in task_rows} == {"completed"}
    completions = Counter(
        cluster.sql(
            "SELECT execution_id, task_id FROM execution_events WHERE event = 'task_completed'"
        )
    )
    assert set(completions) == {(eid, tid) for eid, tid, _, _ in task_rows}
    assert set(completions.values()) == {1}, "a task completion was recorded twice"
    run_completions = Counter(
        eid
        for (eid,) in cluster.sql(
            "SELECT execution_id FROM execution_events WHERE event = 'execution_completed'"
        )
    )
    assert len(run_completions) == runs and set(run_completions.values()) == {1}
    recoveries = {(tid, eid): n for eid, tid, _, n in task_rows}
    bodies = Counter((e.task_id, e.execution_id) for e in cluster.entries())
    assert set(bodies) == set(recoveries)
    over = {k: (n, recoveries[k]) for k, n in bodies.items() if n > 1 + recoveries[k]}
    assert not over, f"task bodies ran more often than recovered: {over}"
    return sum(recoveries.values()), sum(bodies.values()) - len(bodies)


# ---- kill -9 of a worker in the middle of a task ----------------------------------------------
def test_kill_9_of_a_worker_mid_task_is_taken_back_by_another(cluster: Cluster) -> None:
    client = cluster.client()  # opens (and migrates) the database before the workers start
    a_or_b = [cluster.start_worker(), cluster.start_worker()]
    by_pid = {p.pid: p for p in a_or_b}

    slow = client.schedule_workflow(cluster.chain, {"slow": True})
    quick = [client.schedule_workflow(cluster.chain, {"slow": False}) for _ in range(4)]
    quick += [client.schedule_workflow(cluster.fanout, {"sleep": 0.01}) for _ in range(4)]

    def long_started() -> list[LogEntry]:
        return [e for e in cluster.entries() if (e.task_id, e.execution_id) == ("long", slow)]

    wait_for(lambda: bool(long_started()), 20, "the long task to start")
    [started] = long_started()
    assert started.pid in by_pid, "the long task ran outside the two workers"
    victim = by_pid[started.pid]
    survivor = next(p for p in a_or_b if p is not victim)
    # Let the other runs finish first: only the long task is running on the victim when it dies.
    for eid in quick:
        assert client.wait(eid, timeout=20).status == "completed"
    row = {t.task_id: t for t in client.store.get_tasks(slow)}["long"]
    assert row.status == "running"
    assert row.worker_id is not None and f":{victim.pid}:" in row.worker_id

    cluster.kill(victim)
    killed_at = time.time()
    result = client.wait(slow, timeout=30)

    # Every run completed, each task's completion recorded exactly once.
    assert result.status == "completed", result.error
    for eid in [slow, *quick]:
        view = client.get_execution(eid)
        assert view.status == "completed", (eid, view.error)
        assert all(t.status == TaskStatus.COMPLETED for t in view.tasks.values())
        counts = completion_counts(client, eid)
        assert set(counts) == set(view.tasks) and set(counts.values()) == {1}, (eid, counts)
        assert [e.event for e in client.store.get_events(eid)].count("execution_completed") == 1

    # The killed task ran twice (the second time on the survivor);
    # every other task body ran exactly once.
    runs = Counter((e.task_id, e.execution_id) for e in cluster.entries())
    assert runs.pop(("long", slow)) == 2
    assert set(runs.values()) == {1}
    assert len(runs) == 2 + 4 * 3 + 4 * len(FANOUT_TASKS)
    reruns = long_started()
    assert [e.pid for e in reruns] == [victim.pid, survivor.pid]
    assert [e.attempt for e in reruns] == [1, 1]  # a recovery is not a retry
    assert result.tasks["long"].recoveries == 1
    assert result.tasks["long"].attempts == 1
    assert result.tasks["first"].recoveries == 0 and result.tasks["last"].recoveries == 0
    assert result.final_context["first"] in by_pid
    assert result.final_context["long"] == survivor.pid
    assert result.final_context["last"] == survivor.pid

    # Taken back only once the victim's heartbeat (every 0.2 s) was older than the threshold
    # (1.5 s), and soon after that (recovery looks every 0.75 s).
    [recovered] = [e for e in client.store.get_events(slow) if e.event == "task_recovered"]
    assert recovered.task_id == "long"
    assert 1.5 - 0.2 - 0.1 <= recovered.created_at - killed_at < 4.0
    assert survivor.poll() is None


# ---- SIGTERM in the middle of a task ----------------------------------------------------------
def test_sigterm_mid_task_hands_the_task_back_to_another_worker(cluster: Cluster) -> None:
    client = cluster.client()
    workers = [cluster.start_worker(shutdown_grace=0.5), cluster.start_worker(shutdown_grace=0.5)]
    by_pid = {p.pid: p for p in workers}
    eid = client.schedule_workflow(cluster.chain, {"slow": True})

    def long_started() -> list[LogEntry]:
        return [e for e in cluster.entries() if (e.task_id, e.execution_id) == ("long", eid)]

    wait_for(lambda: bool(long_started()), 20, "the long task to start")
    stopping = by_pid[long_started()[0].pid]
    other = next(p for p in workers if p is not stopping)
    stopping.send_signal(signal.SIGTERM)
    # The body sleeps on (a thread cannot be killed), yet the worker exits after its grace
    # period, cleanly, and hands the task back instead of leaving it to stale-claim recovery.
    assert stopping.wait(10) == 0, cluster.stderr_of(stopping)
    result = client.wait(eid, timeout=20)

    assert result.status == "completed", result.error
    assert [e.pid for e in long_started()] == [stopping.pid, other.pid]
    events = [(e.event, e.task_id) for e in client.store.get_events(eid)]
    assert events.count(("task_handed_back", "long")) == 1
    assert ("task_recovered", "long") not in events
    assert result.tasks["long"].recoveries == 0 and result.tasks["long"].attempts == 1
    assert set(completion_counts(client, eid).values()) == {1}
    rows = {w.pid: w.status for w in client.store.list_workers(include_stopped=True)}
    assert rows == {stopping.pid: "stopped", other.pid: "running"}


# ---- every connection dropped, twice, while a stream of runs is processed ---------------------
def test_workers_survive_all_connections_being_dropped_twice(cluster: Cluster) -> None:
    client = cluster.client()
    workers = [cluster.start_worker(), cluster.start_worker()]
    wait_for(lambda: cluster.listeners() == 2, 10, "both workers to LISTEN")

    scheduled: list[str] = []
    terminated: list[int] = []
    for i in range(40):
        scheduled.append(client.schedule_workflow(cluster.fanout, {"sleep": 0.02}))
        time.sleep(0.04)
        if i in (12, 27):
            terminated.append(cluster.terminate_all_connections())
    # Each worker had at least its LISTEN connection and a pooled one open.
    assert all(n >= 4 for n in terminated), terminated

    wait_for(lambda: client.store.count_unfinished() == 0, 45, "every run to finish")
    assert [p.poll() for p in workers] == [None, None], "a worker died"
    wait_for(lambda: cluster.listeners() == 2, 15, "both workers to LISTEN again")

    # Nothing stuck, nothing lost, nothing completed twice.
    finished = {eid for (eid,) in cluster.sql("SELECT id FROM workflow_executions")}
    assert finished >= set(scheduled)
    assert_exactly_once(cluster, len(finished), len(FANOUT_TASKS))
    # Each worker said what happened: its listener reconnected.
    for proc in workers:
        assert "listener connection lost" in cluster.stderr_of(proc), cluster.stderr_of(proc)


def test_client_calls_survive_dropped_connections(cluster: Cluster) -> None:
    """Every pooled connection of a client dies with the server: the next call, a write or a
    read, gets a fresh connection instead of an error."""
    client = cluster.client(pool_size=4)
    eids = [client.schedule_workflow(cluster.chain, {"slow": False}) for _ in range(3)]
    assert {client.get_execution(eid).status for eid in eids} == {"running"}

    assert cluster.terminate_all_connections() >= 1
    eids.append(client.schedule_workflow(cluster.chain, {"slow": False}))  # a write first
    assert {r.execution_id for r in client.list_executions()} == set(eids)

    assert cluster.terminate_all_connections() >= 1
    assert client.get_execution(eids[0]).status == "running"  # a read first
    client.cancel(eids[0])
    client.pause(eids[1])
    assert [client.get_execution(eid).status for eid in eids] == [
        "cancelled",
        "paused",
        "running",
        "running",
    ]


# ---- a submit-only client -------------------------------------------------------------------
def test_submit_only_client_executes_nothing_itself(cluster: Cluster) -> None:
    client = cluster.client()
    waiting = client.schedule_workflow(cluster.chain, {"slow": False})
    cancelled = client.schedule_workflow(cluster.chain, {"slow": False})
    paused = client.schedule_workflow(cluster.fanout, {"sleep": 0.0})

    # No worker: the runs stay running, their roots ready; the client runs nothing.
    with pytest.raises(ExecutionTimeoutError):
        client.wait(waiting, timeout=1.0)
    view = client.get_execution(waiting)
    assert view.status == "running"
    assert {tid: str(t.status) for tid, t in view.tasks.items()} == {
        "first": "ready",
        "long": "pending",
        "last": "pending",
    }
    assert cluster.entries() == []
    assert client.store.list_workers(include_stopped=True) == []  # it is no worker

    client.cancel(cancelled)
    assert client.get_execution(cancelled).status == "cancelled"
    client.pause(paused)
    assert client.get_execution(paused).status == "paused"

    worker = cluster.start_worker()
    result = client.wait(waiting, timeout=20)
    assert result.status == "completed", result.error
    assert {result.final_context[k] for k in ("first", "long", "last")} == {worker.pid}
    assert {e.pid for e in cluster.entries()} == {worker.pid}
    assert os.getpid() not in {e.pid for e in cluster.entries()}

    # The cancelled run never ran; the paused one waits for resume() — from the client.
    time.sleep(0.5)
    assert client.get_execution(cancelled).status == "cancelled"
    assert client.get_execution(paused).status == "paused"
    assert {e.execution_id for e in cluster.entries()} == {waiting}
    client.resume(paused)
    assert client.wait(paused, timeout=20).status == "completed"
    assert client.get_execution(cancelled).status == "cancelled"
    assert cancelled not in {e.execution_id for e in cluster.entries()}

    # SIGTERM is a graceful stop: exit code 0, and the worker row says stopped.
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0, cluster.stderr_of(worker)
    [row] = client.store.list_workers(include_stopped=True)
    assert row.pid == worker.pid and row.status == "stopped"


# ---- NOTIFY wakes an idle worker --------------------------------------------------------------
def test_notify_starts_a_run_at_once_despite_a_long_poll(cluster: Cluster) -> None:
    client = cluster.client()
    cluster.start_worker(poll_interval=5.0)
    wait_for(lambda: cluster.listeners() == 1, 10, "the worker to LISTEN")
    time.sleep(0.3)  # past the wake-up the listener gives itself when it connects

    latencies = []
    for _ in range(3):
        eid = client.schedule_workflow(cluster.chain, {"slow": False})
        assert client.wait(eid, timeout=10).status == "completed"
        row = client.store.get_execution(eid)
        assert row is not None
        started = min(
            e.created_at for e in client.store.get_events(eid) if e.event == "task_started"
        )
        latencies.append(started - row.created_at)
        time.sleep(0.2)
    # The poll (every 4-6 s) cannot explain three runs in a row each starting at once.
    assert max(latencies) < 0.5, latencies


# ---- chaos: workers SIGKILLed at random under a stream of 1,000 runs --------------------------
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_chaos_random_worker_kills_under_1000_runs(
    cluster: Cluster, request: pytest.FixtureRequest
) -> None:
    markexpr = str(request.config.getoption("markexpr") or "")
    if "slow" not in markexpr and os.environ.get("CLOACINA_SLOW") != "1":
        pytest.skip("slow chaos test: run with -m slow (or CLOACINA_SLOW=1)")
    seed = int(os.environ.get("CLOACINA_CHAOS_SEED") or random.randrange(1 << 30))
    rng, kill_rng = random.Random(seed), random.Random(seed + 1)
    # Few slots per worker, so that a backlog builds up and every kill hits running tasks.
    settings: dict[str, Any] = {"max_recoveries": 50, "max_concurrent_tasks": 4}
    client = cluster.client()
    for _ in range(4):
        cluster.start_worker(**settings)

    # 1,000 runs streamed over about a minute (20 runs a second), tasks of 20-150 ms; from
    # another thread, a random worker is SIGKILLed every 1.5-4 s and replaced at once.
    total = 1000
    scheduled: list[str] = []
    kills: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def killer() -> None:
        try:
            while not stop.wait(kill_rng.uniform(1.5, 4.0)):
                victim = kill_rng.choice(cluster.alive())
                cluster.kill(victim)
                kills.append(victim.pid)
                cluster.start_worker(wait=False, **settings)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=killer, name="chaos-killer", daemon=True)
    began = time.monotonic()
    deadline = began + 900
    thread.start()
    try:
        while len(scheduled) < total:
            for _ in range(2):
                context = {"n": len(scheduled), "sleep": rng.uniform(0.02, 0.15)}
                scheduled.append(client.schedule_workflow(cluster.small, context))
            time.sleep(0.1)
        while client.store.count_unfinished() > 0:
            assert not errors, errors
            assert time.monotonic() < deadline, f"runs unfinished after 900 s (seed {seed})"
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    elapsed = time.monotonic() - began

    recovered, reruns = assert_exactly_once(cluster, total, len(SMALL_TASKS))
    print(
        f"\nchaos (seed {seed}): {total} runs ({total * len(SMALL_TASKS)} tasks) in "
        f"{elapsed:.1f}s, {len(kills)} workers SIGKILLed, {recovered} tasks taken back, "
        f"{reruns} task bodies re-run"
    )
    assert len(kills) >= 10
    assert recovered >= 1, "no kill hit a running task: the test did not test recovery"
