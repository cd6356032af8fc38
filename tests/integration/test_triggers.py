"""Triggers (DESIGN.md §10): poll functions that start a run when they return a context.

Driven by a FakeClock: a trigger is polled once per interval of the runner's clock, a
returned context starts a run named by the trigger and its context key, the same context
starts nothing while its run is active (unless allow_concurrent), a raising trigger backs
off and never stops the others, one runner alone polls a due trigger, and a slow poll
function never delays tasks. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from cloacina import Context, DefaultRunner, NotFoundError, task, workflow
from cloacina.model.trigger import TriggerCatalog, make_trigger
from cloacina.testing import FakeClock

START = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
#: How long a test waits to be sure that something does NOT happen.
QUIET = 0.3

RunnerFactory = Callable[..., DefaultRunner]


def run_triggers(runner: DefaultRunner) -> list[tuple[str, str | None, str | None, str]]:
    """``(id, trigger_name, trigger_key, input context)`` of every run, oldest first."""
    with runner.store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, trigger_name, trigger_key, input_context FROM workflow_executions"
                " ORDER BY created_at, id"
            )
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]


def key_of(context: dict[str, Any]) -> str:
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def simple_workflow(wf_name: str, gate: threading.Event | None = None) -> None:
    """A one-task workflow; with ``gate`` its task waits for it (a run that stays active)."""

    @workflow(name=wf_name)
    class Simple:
        @task()
        def work(context: Context) -> None:
            if gate is not None and not gate.wait(30):
                raise TimeoutError("the test never opened the gate")
            context.set("done", True)


def test_polled_once_per_interval_and_a_context_starts_a_run(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("ingest")
    simple_workflow(wf)
    clock = FakeClock(START)
    calls: list[float] = []

    def poll() -> dict[str, Any]:
        calls.append(clock.now())
        return {"file": f"f{len(calls)}.csv", "nested": {"b": 2, "a": 1}}

    cat = TriggerCatalog()
    cat.add(make_trigger(poll, workflow=wf, poll_interval=timedelta(seconds=30), name="files"))
    runner = make_runner(clock=clock, triggers=cat)
    until(lambda: len(calls) == 1, what="the first poll, at start")
    until(lambda: len(run_triggers(runner)) == 1, what="the first run")
    time.sleep(QUIET)
    assert len(calls) == 1, "polled again although the clock stood still"
    clock.advance(29)
    time.sleep(QUIET)
    assert len(calls) == 1, "polled before its interval had passed"
    clock.advance(1)
    until(lambda: len(calls) == 2, what="the second poll")
    for n in (3, 4, 5):
        clock.advance(30)
        until(lambda n=n: len(calls) == n, what=f"poll {n}")
    time.sleep(QUIET)
    assert calls == [START.timestamp() + 30 * i for i in range(5)]
    until(lambda: len(run_triggers(runner)) == 5, what="a run per poll")
    runs = run_triggers(runner)
    for i, (eid, trigger_name, trigger_key, input_json) in enumerate(runs, start=1):
        context = {"file": f"f{i}.csv", "nested": {"b": 2, "a": 1}}
        assert trigger_name == "files"
        assert trigger_key == key_of(context)
        assert json.loads(input_json) == context
        assert runner.wait(eid, timeout=10).status == "completed"
    (info,) = runner.list_triggers()
    assert info.name == "files" and info.workflow == wf and info.enabled
    assert info.poll_interval == 30.0 and not info.allow_concurrent
    assert info.failures == 0 and info.last_error is None
    assert info.last_polled_at == datetime.fromtimestamp(START.timestamp() + 120, UTC)
    assert info.next_poll_at == datetime.fromtimestamp(START.timestamp() + 150, UTC)
    assert info.last_fired_at == info.last_polled_at


def test_none_starts_nothing(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("nothing")
    simple_workflow(wf)
    clock = FakeClock(START)
    calls: list[int] = []

    def poll() -> None:
        calls.append(1)

    cat = TriggerCatalog()
    cat.add(make_trigger(poll, workflow=wf, poll_interval=10))
    runner = make_runner(clock=clock, triggers=cat)
    until(lambda: len(calls) == 1)
    clock.advance(10)
    until(lambda: len(calls) == 2)
    time.sleep(QUIET)
    assert run_triggers(runner) == []
    assert runner.list_triggers()[0].last_fired_at is None


def test_the_same_context_waits_for_its_active_run(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("dedupe")
    gate = threading.Event()
    simple_workflow(wf, gate)
    clock = FakeClock(START)
    calls: list[int] = []

    def poll() -> dict[str, Any]:
        calls.append(1)
        return {"bucket": "in", "n": 1}

    cat = TriggerCatalog()
    cat.add(make_trigger(poll, workflow=wf, poll_interval=30, name="bucket"))
    runner = make_runner(clock=clock, triggers=cat)
    until(lambda: len(run_triggers(runner)) == 1, what="the first run")
    for n in (2, 3, 4):
        clock.advance(30)
        until(lambda n=n: len(calls) == n, what=f"poll {n}")
    time.sleep(QUIET)
    assert len(run_triggers(runner)) == 1, "the same context started a run while one was active"
    first = run_triggers(runner)[0][0]
    # Paused counts as active too.
    runner.pause(first)
    clock.advance(30)
    until(lambda: len(calls) == 5)
    time.sleep(QUIET)
    assert len(run_triggers(runner)) == 1
    runner.resume(first)
    gate.set()
    assert runner.wait(first, timeout=10).status == "completed"
    clock.advance(30)
    until(lambda: len(run_triggers(runner)) == 2, what="a new run once the first finished")
    (_, _, key_a, _), (second, _, key_b, _) = run_triggers(runner)
    assert key_a == key_b == key_of({"bucket": "in", "n": 1})
    assert runner.wait(second, timeout=10).status == "completed"


def test_allow_concurrent_starts_a_run_per_poll(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("concurrent")
    gate = threading.Event()
    simple_workflow(wf, gate)
    clock = FakeClock(START)
    cat = TriggerCatalog()
    cat.add(
        make_trigger(
            lambda: {"same": True}, workflow=wf, poll_interval=5, allow_concurrent=True, name="c"
        )
    )
    runner = make_runner(clock=clock, triggers=cat)
    until(lambda: len(run_triggers(runner)) == 1)
    for n in (2, 3):
        clock.advance(5)
        until(lambda n=n: len(run_triggers(runner)) == n)
    runs = run_triggers(runner)
    assert len({r[2] for r in runs}) == 1, "one context, one key"
    assert all(runner.get_execution(r[0]).status == "running" for r in runs)
    gate.set()
    for r in runs:
        assert runner.wait(r[0], timeout=10).status == "completed"


def test_a_raising_trigger_backs_off_and_the_others_keep_firing(
    make_runner: RunnerFactory,
    name: Callable[[str], str],
    until: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    wf = name("backoff")
    simple_workflow(wf)
    clock = FakeClock(START)
    bad_calls: list[float] = []
    good_calls: list[float] = []
    healed = threading.Event()

    def bad() -> None:
        bad_calls.append(clock.now())
        if not healed.is_set():
            raise ValueError("the bucket is unreachable")

    def good() -> dict[str, Any]:
        good_calls.append(clock.now())
        return {"n": len(good_calls)}

    cat = TriggerCatalog()
    cat.add(make_trigger(bad, workflow=wf, poll_interval=10, name="bad"))
    cat.add(make_trigger(good, workflow=wf, poll_interval=10, name="good"))
    caplog.set_level(logging.ERROR, logger="cloacina.triggers")
    runner = make_runner(clock=clock, triggers=cat)
    t0 = START.timestamp()
    until(lambda: len(bad_calls) == 1 and len(good_calls) == 1)
    until(lambda: runner.get_trigger("bad").failures == 1, what="the failure recorded")
    for step in range(1, 8):  # 70 s in steps of 10 s
        clock.advance(10)
        until(lambda s=step: len(good_calls) == s + 1, what="the good trigger")
    time.sleep(QUIET)
    # Failures at 0 (wait 20), 20 (wait 40), 60 (wait 80): doubling waits.
    assert bad_calls == [t0, t0 + 20, t0 + 60]
    info = runner.get_trigger("bad")
    assert info.failures == 3
    assert info.next_poll_at == datetime.fromtimestamp(t0 + 60 + 80, UTC)
    assert info.last_error is not None
    assert "Traceback" in info.last_error and "ValueError: the bucket is unreachable" in (
        info.last_error
    )
    logged = [r for r in caplog.records if r.name == "cloacina.triggers" and "'bad'" in r.message]
    assert logged and "ValueError: the bucket is unreachable" in logged[0].getMessage()
    assert "Traceback" in logged[0].getMessage()
    assert runner.get_trigger("good").failures == 0
    until(lambda: len(run_triggers(runner)) == 8, what="a run per good poll")
    # It works again: its failures are forgotten and its interval is back to normal.
    healed.set()
    clock.advance(70)  # t0 + 140: due
    until(lambda: len(bad_calls) == 4)
    until(lambda: runner.get_trigger("bad").failures == 0, what="the failures reset")
    assert runner.get_trigger("bad").last_error is None
    clock.advance(10)
    until(lambda: len(bad_calls) == 5, what="a poll one interval later")


def test_a_bad_result_counts_as_a_failure(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("badresult")
    simple_workflow(wf)
    clock = FakeClock(START)
    cat = TriggerCatalog()
    cat.add(make_trigger(lambda: ["not", "a", "dict"], workflow=wf, poll_interval=1, name="lst"))
    cat.add(make_trigger(lambda: {"when": object()}, workflow=wf, poll_interval=1, name="obj"))
    runner = make_runner(clock=clock, triggers=cat)
    until(lambda: all(t.failures == 1 for t in runner.list_triggers()))
    errors = {t.name: t.last_error or "" for t in runner.list_triggers()}
    assert "returned list" in errors["lst"]
    assert "'when'" in errors["obj"]
    assert run_triggers(runner) == []


def test_two_runners_never_both_poll_a_due_trigger(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("shared")
    simple_workflow(wf)
    clock = FakeClock(START)
    calls: list[tuple[str, float]] = []
    lock = threading.Lock()

    def poll_as(who: str) -> Callable[[], dict[str, Any]]:
        def poll() -> dict[str, Any]:
            with lock:
                calls.append((who, clock.now()))
                return {"n": len(calls)}

        return poll

    runners = []
    for who in ("a", "b", "c"):
        cat = TriggerCatalog()  # the same trigger, known by three runners
        cat.add(make_trigger(poll_as(who), workflow=wf, poll_interval=2, name="shared"))
        runners.append(make_runner(clock=clock, triggers=cat))
    # A worker without the trigger's code never claims its polls (which would skip them).
    runners.append(make_runner(clock=clock, triggers=TriggerCatalog()))
    until(lambda: len(calls) == 1)
    for n in range(2, 22):
        clock.advance(2)
        until(lambda n=n: len(calls) == n, what=f"poll {n}")
    time.sleep(QUIET)
    times = [t for _, t in calls]
    assert times == [START.timestamp() + 2 * i for i in range(21)], "a poll ran twice or never"
    assert len(run_triggers(runners[0])) == 21
    assert len(runners[0].list_triggers()) == 1, "the trigger was recorded twice"


def test_polls_by_the_database_clock_are_claimed_once(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    """Real time: three runners on one database poll a 0.2 s trigger for 2 s."""
    wf = name("realtime")
    simple_workflow(wf)
    calls: list[float] = []
    lock = threading.Lock()

    def poll() -> None:
        with lock:
            calls.append(time.time())

    for _ in range(3):
        cat = TriggerCatalog()
        cat.add(make_trigger(poll, workflow=wf, poll_interval=0.2, name="rt"))
        make_runner(triggers=cat)
    began = time.time()
    time.sleep(2.0)
    with lock:
        seen = list(calls)
    within = [t for t in seen if began <= t < began + 2.0]
    # About ten (fewer on a loaded machine: a late poll moves the next one on), never more.
    assert 4 <= len(within) <= 11, within
    # A poll claimed twice would run twice at once; claimed polls are 0.2 s apart (each
    # call may start a little late, so allow for some of that).
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert min(gaps) > 0.08, f"two polls {min(gaps):.3f}s apart: one was claimed twice"


def test_two_runners_starting_the_same_context_start_one_run(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    """The transaction that starts a run is race-free: many runners firing the same context
    at the same instant start one run."""
    wf = name("race")
    gate = threading.Event()
    simple_workflow(wf, gate)
    trig = make_trigger(lambda: None, workflow=wf, poll_interval=3600, name="race")
    runners = []
    for _ in range(4):
        cat = TriggerCatalog()
        cat.add(trig)
        runners.append(make_runner(triggers=cat))
    barrier = threading.Barrier(len(runners) * 2)
    started: list[str | None] = []

    def fire(r: DefaultRunner) -> None:
        barrier.wait()
        started.append(r._fire_trigger(trig, {"same": "context"}))

    threads = [threading.Thread(target=fire, args=(r,)) for r in runners for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ids = [s for s in started if s is not None]
    assert len(started) == 8 and len(ids) == 1, started
    gate.set()
    assert runners[0].wait(ids[0], timeout=30).status == "completed"


def test_a_slow_trigger_delays_no_task_and_no_other_trigger(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("slow")
    simple_workflow(wf)
    clock = FakeClock(START)
    release = threading.Event()
    slow_calls: list[int] = []
    fast_calls: list[int] = []

    def slow() -> None:
        slow_calls.append(1)
        release.wait(20)

    def fast() -> None:
        fast_calls.append(1)

    cat = TriggerCatalog()
    cat.add(make_trigger(slow, workflow=wf, poll_interval=1, name="slow"))
    cat.add(make_trigger(fast, workflow=wf, poll_interval=1, name="fast"))
    runner = make_runner(clock=clock, triggers=cat)
    try:
        until(lambda: slow_calls and fast_calls)
        began = time.monotonic()
        result = runner.execute(wf, timeout=10)
        assert result.status == "completed"
        assert time.monotonic() - began < 2.0, "a task waited for a slow trigger"
        for n in (2, 3, 4):
            clock.advance(1)
            until(lambda n=n: len(fast_calls) == n, what="the fast trigger")
        assert len(slow_calls) == 1, "a trigger whose poll runs was polled again"
    finally:
        release.set()
    clock.advance(1)
    until(lambda: len(slow_calls) == 2, what="the slow trigger's next poll")


def test_pause_and_resume(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("pausing")
    simple_workflow(wf)
    clock = FakeClock(START)
    calls: list[float] = []
    cat = TriggerCatalog()
    cat.add(
        make_trigger(lambda: calls.append(clock.now()), workflow=wf, poll_interval=10, name="p")
    )
    runner = make_runner(clock=clock, triggers=cat)
    until(lambda: len(calls) == 1)
    runner.pause_trigger("p")
    assert not runner.get_trigger("p").enabled
    clock.advance(100)
    time.sleep(QUIET)
    assert len(calls) == 1, "a paused trigger was polled"
    runner.resume_trigger("p")
    until(lambda: len(calls) == 2, what="a poll at once on resume")
    assert calls[-1] == START.timestamp() + 100
    with pytest.raises(NotFoundError, match="did you mean 'p'"):
        runner.pause_trigger("pp")
    with pytest.raises(NotFoundError):
        runner.resume_trigger("nope")


def test_recorded_once_and_kept_across_restarts(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("restart")
    simple_workflow(wf)
    clock = FakeClock(START)
    calls: list[int] = []
    cat = TriggerCatalog()
    cat.add(make_trigger(lambda: calls.append(1), workflow=wf, poll_interval=60, name="kept"))
    # Not known here: its workflow is not, so it is neither recorded nor polled.
    cat.add(make_trigger(lambda: calls.append(99), workflow=name("unknown"), poll_interval=1))
    first = make_runner(clock=clock, triggers=cat)
    until(lambda: len(calls) == 1)
    first.pause_trigger("kept")
    first.shutdown()
    cat.add(make_trigger(lambda: calls.append(2), workflow=wf, poll_interval=120, name="kept"))
    second = make_runner(clock=clock, triggers=cat)
    third = make_runner(clock=clock, triggers=cat)
    (info,) = third.list_triggers()
    assert info.name == "kept" and info.poll_interval == 120.0
    assert not info.enabled, "a restart resumed a paused trigger"
    clock.advance(1000)
    time.sleep(QUIET)
    assert calls == [1]
    second.resume_trigger("kept")
    until(lambda: calls == [1, 2])
    assert 99 not in calls


def test_a_poll_running_at_shutdown_still_starts_its_run(
    db_url: str, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("at_shutdown")
    simple_workflow(wf)
    entered = threading.Event()
    release = threading.Event()

    def poll() -> dict[str, Any]:
        entered.set()
        release.wait(20)
        return {"taken": "from a queue"}

    cat = TriggerCatalog()
    cat.add(make_trigger(poll, workflow=wf, poll_interval=3600, name="queue"))
    runner = DefaultRunner(db_url, triggers=cat, poll_interval=0.05, shutdown_grace=5.0)
    assert entered.wait(10)
    stopping = threading.Thread(target=runner.shutdown)
    stopping.start()
    time.sleep(0.2)
    release.set()
    stopping.join(20)
    with DefaultRunner(db_url, execute_tasks=False) as reader:
        runs = run_triggers(reader)
    assert [(r[1], json.loads(r[3])) for r in runs] == [("queue", {"taken": "from a queue"})]


def test_a_shorter_interval_applies_from_now(
    make_runner: RunnerFactory, name: Callable[[str], str], until: Callable[..., None]
) -> None:
    wf = name("shorter")
    simple_workflow(wf)
    clock = FakeClock(START)
    calls: list[float] = []

    def poll() -> None:
        calls.append(clock.now())

    hourly = TriggerCatalog()
    hourly.add(make_trigger(poll, workflow=wf, poll_interval=3600, name="tick"))
    first = make_runner(clock=clock, triggers=hourly)
    until(lambda: len(calls) == 1)
    first.shutdown()
    clock.advance(5)
    often = TriggerCatalog()
    often.add(make_trigger(poll, workflow=wf, poll_interval=10, name="tick"))
    second = make_runner(clock=clock, triggers=often)
    (info,) = second.list_triggers()
    assert info.poll_interval == 10.0
    assert info.next_poll_at == datetime.fromtimestamp(START.timestamp() + 15, UTC)
    clock.advance(10)
    until(lambda: len(calls) == 2, what="a poll at the new interval")
    assert calls[1] == START.timestamp() + 15
