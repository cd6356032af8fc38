"""Liveness in hard cases: a graceful shutdown longer than the stale threshold, heartbeats
that stop reaching the database for a while, data the database refuses, and the runner's
retention setting. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from cloacina import Context, DefaultRunner, ExecutionNotFoundError, task, workflow
from cloacina.store.records import Claim, ReadyTask, WorkflowKey

pytestmark = pytest.mark.timeout(60)

RunnerFactory = Callable[..., DefaultRunner]


def events_of(runner: DefaultRunner, execution_id: str) -> list[str]:
    return [e.event for e in runner.store.get_events(execution_id)]


def test_graceful_shutdown_longer_than_the_threshold_runs_the_task_once(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    started = threading.Event()
    calls: list[int] = []
    wf_name = name("grace")

    @workflow(name=wf_name)
    class Grace:
        @task
        def slow(context: Context) -> None:
            calls.append(1)
            started.set()
            time.sleep(1.5)  # three stale thresholds
            context.insert("done", True)

    first = make_runner(stale_claim_threshold=0.5, shutdown_grace=10.0)
    eid = first.schedule_workflow(wf_name)
    assert started.wait(10)
    other = make_runner(stale_claim_threshold=0.5)  # would take back a task that went stale
    first.shutdown(wait=True)  # the grace period covers the task: it finishes here

    result = other.wait(eid, timeout=20)
    assert result.status == "completed", result
    assert calls == [1]
    assert result.tasks["slow"].recoveries == 0
    assert "task_recovered" not in events_of(other, eid)


def test_heartbeats_lost_for_a_while_do_not_take_back_a_live_task(
    make_runner: RunnerFactory, name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database is out of reach of the heartbeat for longer than the threshold (an
    outage): the runner's own running task is not taken back when it returns."""
    started = threading.Event()
    calls: list[int] = []
    wf_name = name("outage")

    @workflow(name=wf_name)
    class Outage:
        @task
        def long(context: Context) -> None:
            calls.append(1)
            started.set()
            time.sleep(2.0)
            context.insert("done", True)

    runner = make_runner(stale_claim_threshold=0.5, heartbeat_interval=0.1)
    beat = runner.store.worker_heartbeat
    broken = threading.Event()

    def heartbeat(*args: Any, **kwargs: Any) -> None:
        if broken.is_set():
            raise ConnectionError("database unreachable (simulated)")
        beat(*args, **kwargs)

    monkeypatch.setattr(runner.store, "worker_heartbeat", heartbeat)
    eid = runner.schedule_workflow(wf_name)
    assert started.wait(10)
    broken.set()
    time.sleep(1.0)  # two thresholds without a heartbeat
    broken.clear()

    result = runner.wait(eid, timeout=20)
    assert result.status == "completed", result
    assert calls == [1]
    assert result.tasks["long"].recoveries == 0
    assert "task_recovered" not in events_of(runner, eid)


def test_text_the_database_refuses_is_stored_escaped(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    wf_name = name("nul")

    @workflow(name=wf_name)
    class Nul:
        @task
        def odd_output(context: Context) -> None:
            context.insert("surrogate", "a\ud800b")  # not UTF-8: escaped in the JSON

        @task(dependencies=[odd_output])
        def bad_error(context: Context) -> None:
            raise ValueError("bad\x00byte")  # PostgreSQL text cannot hold NUL

    result = runner.execute(wf_name, timeout=20)
    assert result.status == "failed"
    assert result.tasks["odd_output"].status == "completed"
    error = result.tasks["bad_error"].error or ""
    assert "bad\\x00byte" in error, error
    # The runner is not stuck: the next run goes through too.
    again = runner.execute(wf_name, timeout=20)
    assert again.status == "failed"
    assert runner.get_execution(result.execution_id).status == "failed"


def test_a_refused_outcome_fails_its_task_and_holds_up_nothing(
    runner: DefaultRunner, name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outcome the database will not take (simulated: its output makes every write fail)
    fails its own task after a retry; the other tasks' outcomes are recorded meanwhile."""
    wf_name = name("refused")
    poison = '{"poison":true}'

    @workflow(name=wf_name)
    class Refused:
        @task
        def good(context: Context) -> None:
            context.insert("good", True)

        @task
        def bad(context: Context) -> None:
            context.insert("poison", True)

    engine = runner._engine
    write = engine.store.write

    class Refusing:
        def __init__(self) -> None:
            self.cm = write()

        def __enter__(self) -> Any:
            tx = self.cm.__enter__()
            complete_tasks = tx.complete_tasks

            def refuse(items: Any, now: float) -> Any:
                if any(i.output_json == poison for i in items):
                    raise ValueError("the database refuses this value (simulated)")
                return complete_tasks(items, now)

            # wraps the method of this one transaction only, not of the class
            tx.complete_tasks = refuse  # type: ignore[method-assign]
            return tx

        def __exit__(self, *exc: Any) -> Any:
            return self.cm.__exit__(*exc)

    monkeypatch.setattr(engine.store, "write", Refusing)
    result = runner.execute(wf_name, timeout=30)
    assert result.tasks["good"].status == "completed"
    assert result.tasks["bad"].status == "failed"
    assert "could not be stored" in (result.tasks["bad"].error or "")
    assert result.status == "failed"


def test_retention_setting_prunes_finished_runs(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    wf_name = name("retained")

    @workflow(name=wf_name)
    class Retained:
        @task
        def only(context: Context) -> None:
            context.insert("x", 1)

    plain = make_runner()
    kept = plain.execute(wf_name, timeout=20)
    pruning = make_runner(retention=0.3)
    old = pruning.execute(wf_name, timeout=20)

    def gone() -> bool:
        try:
            pruning.get_execution(old.execution_id)
        except ExecutionNotFoundError:
            return True
        return False

    deadline = time.monotonic() + 15
    while not gone():
        assert time.monotonic() < deadline, "the finished run was never pruned"
        time.sleep(0.1)
    # Every finished run of the database is past retention by then, the first one too; a
    # running one is never pruned.
    assert pruning.store.get_events(old.execution_id) == []
    assert pruning.store.get_tasks(old.execution_id) == []
    del kept


def test_staleness_is_judged_by_the_database_clock(
    db_url: str, insert_run: Callable[..., str]
) -> None:
    """A worker whose own clock is an hour behind (or ahead) is neither stale while it
    heartbeats nor fresh once it stops: heartbeats are stamped by the database."""

    from cloacina.store import open_store
    from cloacina.store.records import WorkerRow

    store = open_store(db_url)
    try:
        insert_run(store, [("only", 0, 0, 1)])
        for skew in (-3600.0, 3600.0):
            worker = f"skewed-{skew:+.0f}"
            local = time.time() + skew
            store.register_worker(
                WorkerRow(worker, "host", 1, "running", local, local, 0, 8, "0", None)
            )
            with store.write() as tx:
                (claim,) = tx.claim_ready(1, [("wf", "v1")], worker, local)
            store.worker_heartbeat(worker, local, 1)
            assert store.find_stale(5.0) == [], f"clock {skew:+.0f}s: a live worker looked stale"
            time.sleep(0.6)  # no heartbeat for longer than the max age below
            stale = store.find_stale(0.5)
            assert [s.claim_token for s in stale] == [claim.claim_token], f"clock {skew:+.0f}s"
            with store.write() as tx:
                assert tx.requeue_stale(stale[0], 0.5)
    finally:
        store.close()


def test_recovery_rechecks_staleness_inside_its_write(
    db_url: str, insert_run: Callable[..., str]
) -> None:
    """A worker judged stale by a read, whose heartbeat comes back before the recovery's
    write, keeps its task: the write re-checks the heartbeat (else the body runs twice)."""

    from cloacina.store import open_store
    from cloacina.store.records import WorkerRow

    store = open_store(db_url)
    try:
        insert_run(store, [("a", 0, 0, 1), ("b", 1, 0, 1)])
        now = time.time()
        store.register_worker(WorkerRow("slow", "host", 1, "running", now, now, 0, 8, "0", None))
        with store.write() as tx:
            claims = tx.claim_ready(2, [("wf", "v1")], "slow", now)
        assert len(claims) == 2
        time.sleep(0.6)
        stale = store.find_stale(0.5)
        assert sorted(s.claim_token for s in stale) == sorted(c.claim_token for c in claims)
        store.worker_heartbeat("slow", time.time(), 2)  # back, before the recovery writes
        with store.write() as tx:
            assert not tx.requeue_stale(stale[0], 0.5)
            assert not tx.fail_stale(stale[1], "abandoned", time.time(), 0.5)
        assert [t.status for t in store.get_tasks(claims[0].execution_id)] == [
            "running",
            "running",
        ]
    finally:
        store.close()


def test_claims_of_a_cycle_whose_commit_seemed_to_fail_are_handed_back(
    runner: DefaultRunner, name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies just after COMMIT reached the server: the cycle looks failed but
    its claims were committed. Nobody runs them, so the runner hands them back, and the run
    still completes (instead of a task staying 'running' behind a live heartbeat)."""
    from cloacina.errors import StoreError

    wf_name = name("unknown_commit")

    @workflow(name=wf_name)
    class UnknownCommit:
        @task
        def first(context: Context) -> None:
            context.insert("first", True)

        @task(dependencies=[first])
        def second(context: Context) -> None:
            context.insert("second", True)

    store = runner._engine.store
    write = store.write
    fired: list[bool] = []

    class CommitThenFail:
        def __init__(self) -> None:
            self.cm = write()
            self.claimed = False

        def __enter__(self) -> Any:
            tx = self.cm.__enter__()
            claim_next = tx.claim_next

            def spy(
                pending: Sequence[ReadyTask],
                ready_limit: int,
                workflow_keys: Sequence[WorkflowKey],
                worker_id: str,
                now: float,
            ) -> tuple[list[Claim], list[Claim]]:
                direct, found = claim_next(pending, ready_limit, workflow_keys, worker_id, now)
                self.claimed = self.claimed or any(c.task_id == "second" for c in direct)
                return direct, found

            # wraps the method of this one transaction only, not of the class
            tx.claim_next = spy  # type: ignore[method-assign]
            return tx

        def __exit__(self, *exc: Any) -> Any:
            result = self.cm.__exit__(*exc)  # the real COMMIT
            if exc[0] is None and self.claimed and not fired:
                fired.append(True)
                raise StoreError("connection lost after COMMIT (simulated)")
            return result

    monkeypatch.setattr(store, "write", CommitThenFail)
    result = runner.execute(wf_name, timeout=20)
    assert fired, "the simulated failure never happened"
    assert result.status == "completed", result
    assert result.final_context == {"first": True, "second": True}
    assert result.tasks["second"].attempts == 1  # handing back is not an attempt
    assert "task_handed_back" in events_of(runner, result.execution_id)


def test_prune_workers_forgets_only_workers_long_gone(
    db_url: str, insert_run: Callable[..., str]
) -> None:

    from cloacina.store import open_store
    from cloacina.store.records import WorkerRow

    store = open_store(db_url)
    try:
        long_ago = time.time() - 7200
        rows = {
            "stopped-long-ago": ("stopped", long_ago),
            "silent-long-ago": ("running", long_ago),
            "silent-with-a-task": ("running", long_ago),
            "stopped-just-now": ("stopped", time.time()),
            "live": ("running", time.time()),
        }
        for worker, (status, when) in rows.items():
            stopped_at = when if status == "stopped" else None
            store.register_worker(
                WorkerRow(worker, "host", 1, status, when, when, 0, 8, "0", stopped_at)
            )
        # register_worker stamps the heartbeat with the database clock: age two of them.
        with store.engine.begin() as conn:
            from sqlalchemy import update

            from cloacina.store.tables import workers

            conn.execute(
                update(workers)
                .where(workers.c.id.in_(["silent-long-ago", "silent-with-a-task"]))
                .values(last_heartbeat=long_ago)
            )
        insert_run(store, [("only", 0, 0, 1)])
        with store.write() as tx:
            assert tx.claim_ready(1, [("wf", "v1")], "silent-with-a-task", time.time())

        assert store.prune_workers(time.time() - 3600) == 2
        left = {w.id for w in store.list_workers(include_stopped=True)}
        assert left == {"silent-with-a-task", "stopped-just-now", "live"}
    finally:
        store.close()
