"""Backfills (DESIGN.md §10, issue 12 deliverable 5) on SQLite and PostgreSQL: exactly the
range's times become runs, never more than ``max_parallel`` unfinished at once, only the
missing ones by default; pause, resume and cancel; progress; several runners pacing one
backfill make each time once; a fresh run is not delayed behind a backfill; bad input
stores nothing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.errors import (
    BackfillNotFoundError,
    InvalidScheduleError,
    InvalidStateError,
    RequestError,
    WorkflowNotFoundError,
)
from cloacina.testing import FakeClock

DAY = datetime(2026, 1, 1, tzinfo=UTC)
Until = Callable[..., None]
Factory = Callable[..., DefaultRunner]


def hours(n: int) -> list[str]:
    """The ISO texts of the first ``n`` hourly times of DAY (as runs' contexts hold them)."""
    return [(DAY + timedelta(hours=i)).isoformat() for i in range(n)]


class Seen:
    """What the task bodies saw: the scheduled times, and how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: list[str] = []
        self.backfills: set[str] = set()
        self.active = 0
        self.peak = 0

    def enter(self, ctx: Context) -> None:
        with self.lock:
            self.times.append(str(ctx.get("scheduled_time")))
            self.backfills.add(str(ctx.get("backfill_id")))
            self.active += 1
            self.peak = max(self.peak, self.active)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1


def define(
    wf_name: str, seen: Seen, gate: threading.Event | None = None, pause: float = 0.0
) -> None:
    @workflow(name=wf_name)
    class Job:
        @task
        def work(context: Context) -> None:
            seen.enter(context)
            try:
                if gate is not None:
                    assert gate.wait(30), "the test never opened the gate"
                time.sleep(pause)
            finally:
                seen.leave()


class PeakWatcher:
    """Samples a backfill's unfinished runs from the database while it runs."""

    def __init__(self, runner: DefaultRunner, backfill_id: str) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(runner, backfill_id))
        self._thread.start()

    def _watch(self, runner: DefaultRunner, backfill_id: str) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, runner.get_backfill(backfill_id).running)
            time.sleep(0.005)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def finished(runner: DefaultRunner, backfill_id: str, until: Until, timeout: float = 30) -> Any:
    until(lambda: runner.get_backfill(backfill_id).finished, timeout=timeout, what="the backfill")
    return runner.get_backfill(backfill_id)


def test_a_backfill_makes_exactly_its_times_at_most_max_parallel_at_once(
    make_runner: Factory, name: Callable[[str], str], until: Until
) -> None:
    seen = Seen()
    wf_name = name("bf_exact")
    define(wf_name, seen, pause=0.02)
    runner = make_runner(max_concurrent_tasks=8)
    bid = runner.backfill(wf_name, DAY, DAY + timedelta(hours=11), cron="0 * * * *", max_parallel=3)
    watcher = PeakWatcher(runner, bid)
    try:
        done = finished(runner, bid, until)
    finally:
        peak = watcher.stop()
    assert sorted(seen.times) == hours(12)  # each time once, none outside the range
    assert seen.backfills == {bid}
    assert 1 <= peak <= 3, peak
    assert seen.peak <= 3
    assert (done.status, done.total, done.created, done.completed) == ("completed", 12, 12, 12)
    assert (done.failed, done.running, done.skipped, done.cancelled) == (0, 0, 0, 0)
    assert done.next_time is None and done.finished_at is not None
    assert done.done == 12
    assert [b.id for b in runner.list_backfills()] == [bid]


def test_only_the_missing_times_by_default_and_all_when_asked(
    make_runner: Factory, name: Callable[[str], str], until: Until
) -> None:
    seen = Seen()
    wf_name = name("bf_missing")
    define(wf_name, seen)
    runner = make_runner()
    # Runs for 02:00..04:00 exist already (made by a first backfill of that stretch).
    first = runner.backfill(
        wf_name, DAY + timedelta(hours=2), DAY + timedelta(hours=4), cron="0 * * * *"
    )
    assert finished(runner, first, until).created == 3
    seen.times.clear()
    second = runner.backfill(
        wf_name, DAY, DAY + timedelta(hours=9), cron="0 * * * *", max_parallel=2
    )
    done = finished(runner, second, until)
    assert sorted(seen.times) == [t for i, t in enumerate(hours(10)) if i not in (2, 3, 4)]
    assert (done.total, done.created, done.skipped, done.completed) == (10, 7, 3, 7)
    seen.times.clear()
    third = runner.backfill(
        wf_name, DAY, DAY + timedelta(hours=3), cron="0 * * * *", only_missing=False
    )
    done = finished(runner, third, until)
    assert sorted(seen.times) == hours(4)
    assert (done.created, done.skipped) == (4, 0)


def test_pause_resume_and_cancel(
    make_runner: Factory, name: Callable[[str], str], until: Until
) -> None:
    seen = Seen()
    gate = threading.Event()
    wf_name = name("bf_control")
    define(wf_name, seen, gate=gate)
    runner = make_runner(max_concurrent_tasks=4)
    bid = runner.backfill(wf_name, DAY, DAY + timedelta(hours=9), cron="0 * * * *", max_parallel=2)
    until(lambda: len(seen.times) == 2, what="the first two runs")
    runner.pause_backfill(bid[:8])  # a prefix of the id will do
    assert runner.get_backfill(bid).status == "paused"
    runner.pause_backfill(bid)  # again: nothing to do
    gate.set()
    until(lambda: runner.get_backfill(bid).completed == 2, what="the two runs to end")
    time.sleep(0.5)  # paused: no new run, however long
    paused = runner.get_backfill(bid)
    assert (paused.status, paused.created, paused.running) == ("paused", 2, 0)
    assert len(seen.times) == 2
    gate.clear()
    runner.resume_backfill(bid)
    until(lambda: len(seen.times) == 4, what="two more runs after the resume")
    assert runner.get_backfill(bid).status == "running"
    cancelled = runner.cancel_backfill(bid)
    assert cancelled == 2
    gate.set()
    until(lambda: runner.get_backfill(bid).running == 0, what="the cancelled runs to end")
    time.sleep(0.5)
    done = runner.get_backfill(bid)
    assert (done.status, done.created, done.cancelled, done.completed) == ("cancelled", 4, 2, 2)
    assert done.finished and done.finished_at is not None
    assert len(seen.times) == 4  # nothing made after the cancel
    with pytest.raises(InvalidStateError, match="cancelled"):
        runner.resume_backfill(bid)
    with pytest.raises(InvalidStateError):
        runner.pause_backfill(bid)
    assert runner.cancel_backfill(bid) == 0  # again: nothing left to cancel
    with pytest.raises(BackfillNotFoundError, match="backfills list"):
        runner.get_backfill("no-such-backfill")


def test_a_failed_run_fails_the_backfill_and_is_counted(
    make_runner: Factory, name: Callable[[str], str], until: Until
) -> None:
    wf_name = name("bf_fail")
    bad = (DAY + timedelta(hours=1)).isoformat()

    @workflow(name=wf_name)
    class Flaky:
        @task
        def work(context: Context) -> None:
            if context.get("scheduled_time") == bad:
                raise ValueError("no data for that hour")

    runner = make_runner()
    bid = runner.backfill(wf_name, DAY, DAY + timedelta(hours=3), cron="0 * * * *")
    done = finished(runner, bid, until)
    assert (done.status, done.completed, done.failed, done.created) == ("failed", 3, 1, 4)


def test_a_fresh_run_is_not_delayed_behind_a_backfill(
    make_runner: Factory, name: Callable[[str], str], until: Until
) -> None:
    seen = Seen()
    wf_name = name("bf_busy")
    define(wf_name, seen, pause=0.05)
    fresh_name = name("fresh")
    fresh_ran: list[float] = []

    @workflow(name=fresh_name)
    class Fresh:
        @task
        def now(context: Context) -> None:
            fresh_ran.append(time.monotonic())

    # One slot, and a backfill whose runs are all queued at once (max_parallel = total).
    runner = make_runner(max_concurrent_tasks=1)
    bid = runner.backfill(
        wf_name, DAY, DAY + timedelta(hours=39), cron="0 * * * *", max_parallel=40
    )
    until(lambda: runner.get_backfill(bid).created == 40 and len(seen.times) >= 2, what="queue")
    eid = runner.schedule_workflow(fresh_name)
    result = runner.wait(eid, timeout=30)
    assert result.status == "completed"
    at_fresh = len(seen.times)
    progress = runner.get_backfill(bid)
    # Its task was claimed at the next free slot: at most the one running backfill task (and
    # one claimed in the same cycle) went before it, not the 38 queued.
    assert at_fresh <= 4, at_fresh
    assert progress.completed < 40 and not progress.finished
    done = finished(runner, bid, until, timeout=60)
    assert (done.status, done.completed) == ("completed", 40)


def test_two_runners_pacing_one_backfill_make_each_time_once(
    make_runner: Factory, name: Callable[[str], str], until: Until
) -> None:
    seen = Seen()
    wf_name = name("bf_two")
    define(wf_name, seen, pause=0.01)
    first = make_runner(max_concurrent_tasks=4)
    second = make_runner(max_concurrent_tasks=4)
    bid = first.backfill(wf_name, DAY, DAY + timedelta(hours=47), cron="0 * * * *", max_parallel=6)
    # Both pace it (each wakes on its own runs ending and on its timer).
    second._poke_backfills()
    watcher = PeakWatcher(first, bid)
    try:
        done = finished(first, bid, until, timeout=60)
    finally:
        peak = watcher.stop()
    counts = Counter(seen.times)
    assert sorted(counts) == hours(48)
    assert max(counts.values()) == 1, [t for t, n in counts.items() if n > 1]
    assert (done.created, done.completed, done.status) == (48, 48, "completed")
    assert peak <= 6


def test_bad_input_is_refused_and_nothing_is_stored(
    make_runner: Factory, name: Callable[[str], str]
) -> None:
    seen = Seen()
    wf_name = name("bf_bad")
    define(wf_name, seen)
    runner = make_runner(execute_tasks=False)
    cases: list[tuple[type[Exception], str, dict[str, Any]]] = [
        (InvalidScheduleError, "after its end", {"start": DAY + timedelta(days=1), "end": DAY}),
        (InvalidScheduleError, "force", {"cron": "* * * * *", "end": DAY + timedelta(days=70)}),
        (InvalidScheduleError, "minute", {"cron": "61 * * * *"}),
        (InvalidScheduleError, "Europe/Berlin", {"timezone": "Europe/Berln"}),
        (InvalidScheduleError, "nothing to backfill", {"cron": "0 0 1 6 *"}),
        (RequestError, "max_parallel", {"max_parallel": 0}),
        (RequestError, "declares no schedule", {"cron": None}),
    ]
    for error, text, change in cases:
        args: dict[str, Any] = {"start": DAY, "end": DAY + timedelta(days=1), "cron": "0 * * * *"}
        args.update(change)
        with pytest.raises(error, match=text):
            runner.backfill(wf_name, args.pop("start"), args.pop("end"), **args)
    with pytest.raises(WorkflowNotFoundError, match=repr(wf_name)):
        runner.backfill(wf_name[:-1], DAY, DAY + timedelta(days=1), cron="0 * * * *")
    assert runner.list_backfills() == []
    # force=True takes a range that large.
    bid = runner.backfill(
        wf_name, DAY, DAY + timedelta(days=70), cron="* * * * *", force=True, max_parallel=1
    )
    assert runner.get_backfill(bid).total == 70 * 24 * 60 + 1


def test_a_backfill_reads_the_runners_clock(
    db_url: str, name: Callable[[str], str], until: Until
) -> None:
    seen = Seen()
    wf_name = name("bf_clock")
    define(wf_name, seen)
    clock = FakeClock(datetime(2030, 6, 1, 12, 0, tzinfo=UTC))
    runner = DefaultRunner(db_url, clock=clock, poll_interval=0.05, shutdown_grace=5.0)
    try:
        bid = runner.backfill(
            wf_name,
            "2026-03-29T00:00",
            "2026-03-29T04:00",
            cron="30 * * * *",
            timezone="Europe/Berlin",
        )
        done = finished(runner, bid, until)
        assert done.created_at == datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
        # Berlin skips 02:00-03:00 that night: 00:30, 01:30, (02:30 at 03:00), 03:30.
        assert sorted(seen.times) == [
            "2026-03-29T00:30:00+01:00",
            "2026-03-29T01:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T03:30:00+02:00",
        ]
        assert done.total == 4
        runs = runner.list_executions(workflow_name=wf_name)
        assert {r.created_at for r in runs} == {datetime(2030, 6, 1, 12, 0, tzinfo=UTC)}
    finally:
        runner.shutdown()


def test_the_cron_defaults_to_the_workflows_one_declared_schedule(
    make_runner: Factory, name: Callable[[str], str], until: Until
) -> None:
    from cloacina import cron

    seen = Seen()
    one, two = name("bf_declared"), name("bf_two_schedules")

    @workflow(name=one, schedules=[cron("0 2 * * *", timezone="Europe/Berlin")])
    class Nightly:
        @task
        def work(context: Context) -> None:
            seen.enter(context)
            seen.leave()

    @workflow(name=two, schedules=[cron("0 2 * * *", name="a"), cron("0 3 * * *", name="b")])
    class Twice:
        @task
        def work(context: Context) -> None:
            return None

    runner = make_runner()
    bid = runner.backfill(one, "2026-03-27", "2026-03-30")
    done = finished(runner, bid, until)
    assert (done.cron, done.timezone, done.total) == ("0 2 * * *", "Europe/Berlin", 3)
    # 02:00 Berlin on the 29th does not exist: it fires at 03:00 summer time.
    assert sorted(seen.times) == [
        "2026-03-27T02:00:00+01:00",
        "2026-03-28T02:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]
    with pytest.raises(RequestError, match="several schedules"):
        runner.backfill(two, "2026-03-27", "2026-03-30")
    assert runner.backfill(two, "2026-03-27", "2026-03-28", cron="0 3 * * *")


def test_the_cursor_crosses_batches_and_scan_limits(
    make_runner: Factory, name: Callable[[str], str], until: Until, monkeypatch: Any
) -> None:
    """Small batches and scan limits (3 and 5 times) over a range where most times have a
    run already: the cursor goes on across batches and steps, each missing time once."""
    import cloacina.engine.backfills as pacing

    monkeypatch.setattr(pacing, "BATCH", 3)
    monkeypatch.setattr(pacing, "MAX_SCAN", 5)
    seen = Seen()
    wf_name = name("bf_cursor")
    define(wf_name, seen)
    runner = make_runner()
    # Runs exist for every time but 04:00, 11:00, 12:00 and 19:00.
    have = [h for h in range(20) if h not in (4, 11, 12, 19)]
    for h in have:
        one = runner.backfill(
            wf_name, DAY + timedelta(hours=h), DAY + timedelta(hours=h), cron="0 * * * *"
        )
        finished(runner, one, until)
    seen.times.clear()
    bid = runner.backfill(wf_name, DAY, DAY + timedelta(hours=19), cron="0 * * * *", max_parallel=1)
    done = finished(runner, bid, until)
    assert sorted(seen.times) == [hours(20)[h] for h in (4, 11, 12, 19)]
    assert (done.total, done.created, done.skipped, done.completed) == (20, 4, 16, 4)


def test_a_fresh_run_does_not_wait_for_a_backfill_runs_chain(
    make_runner: Factory, name: Callable[[str], str], until: Until
) -> None:
    """One slot; a backfill run of three 0.3 s tasks in a line has started: a run submitted
    now takes the slot when the task running ends, not after the rest of that chain (the
    chain's next tasks go through the queue, by priority, not straight to the slot)."""
    order: list[str] = []
    lock = threading.Lock()
    chain, fresh = name("bf_chain"), name("fresh_single")

    def step(label: str) -> None:
        with lock:
            order.append(label)
        time.sleep(0.3)

    @workflow(name=chain)
    class Chain:
        @task
        def a(context: Context) -> None:
            step("a")

        @task(dependencies=["a"])
        def b(context: Context) -> None:
            step("b")

        @task(dependencies=["b"])
        def c(context: Context) -> None:
            step("c")

    @workflow(name=fresh)
    class Fresh:
        @task
        def only(context: Context) -> None:
            with lock:
                order.append("fresh")

    runner = make_runner(max_concurrent_tasks=1)
    bid = runner.backfill(chain, DAY, DAY + timedelta(hours=1), cron="0 * * * *", max_parallel=1)
    until(lambda: order == ["a"], what="the backfill run's first task")
    eid = runner.schedule_workflow(fresh)
    assert runner.wait(eid, timeout=30).status == "completed"
    finished(runner, bid, until)
    assert order.index("fresh") == 1, order  # right after the task that held the slot
    assert order.count("a") == order.count("b") == order.count("c") == 2
