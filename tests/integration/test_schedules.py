"""Cron schedules (DESIGN.md §10) driven by a FakeClock, on SQLite and PostgreSQL: months of
schedule in moments, catch-up after downtime and on resume, edits that never fire old
times, bounds, the scheduled run's context, and bad input that stores nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.errors import InvalidScheduleError, NotFoundError, WorkflowNotFoundError
from cloacina.model.cron import CronSpec
from cloacina.testing import FakeClock

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday, midnight UTC
Seen = list[dict[str, Any]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def scheduled(name: Callable[[str], str]) -> Iterator[tuple[str, Seen]]:
    """A one-task workflow that records the context of each run."""
    seen: Seen = []
    wf_name = name("sched")

    @workflow(name=wf_name)
    class Scheduled:
        @task()
        def record(context: Context) -> None:
            seen.append(context.to_dict())

    yield wf_name, seen


@pytest.fixture
def make(db_url: str, clock: FakeClock) -> Iterator[Callable[..., DefaultRunner]]:
    runners: list[DefaultRunner] = []

    def build(**kwargs: Any) -> DefaultRunner:
        settings: dict[str, Any] = {"poll_interval": 0.05, "shutdown_grace": 5.0, **kwargs}
        runner = DefaultRunner(db_url, clock=clock, **settings)
        runners.append(runner)
        return runner

    yield build
    for runner in reversed(runners):
        runner.shutdown(wait=False)


def fired(runner: DefaultRunner, sid: str) -> list[float]:
    """The scheduled times that fired, ascending (epoch seconds)."""
    return sorted(f.scheduled_for.timestamp() for f in runner.schedule_history(sid, limit=100000))


def settle(runner: DefaultRunner, sid: str, count: int, until: Callable[..., None]) -> None:
    until(lambda: len(fired(runner, sid)) >= count, timeout=20, what=f"{count} fires")


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def test_hourly_for_sixty_days_fires_exactly_each_hour(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
) -> None:
    wf_name, seen = scheduled
    runner = make()
    sid = runner.add_schedule(wf_name, "0 * * * *", catchup="all", max_catchup=100)
    expected: list[float] = []
    for day in range(60):
        clock.advance(timedelta(days=1))
        expected = [(T0 + hours(h)).timestamp() for h in range(1, 24 * (day + 1) + 1)]
        settle(runner, sid, len(expected), until)
    assert fired(runner, sid) == expected  # exactly these: none missed, none doubled
    until(lambda: len(seen) == len(expected), timeout=30, what="every run done")
    times = sorted(datetime.fromisoformat(c["scheduled_time"]).timestamp() for c in seen)
    assert times == expected
    assert {c["schedule_id"] for c in seen} == {sid}
    assert {c["timezone"] for c in seen} == {"UTC"}
    sched = runner.get_schedule(sid)
    assert sched.last_fire_at is not None and sched.last_fire_at.timestamp() == expected[-1]
    assert sched.next_fire_at is not None and sched.next_fire_at.timestamp() == expected[-1] + 3600


def test_a_schedule_fires_first_strictly_after_it_was_added_with_its_context(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
) -> None:
    wf_name, seen = scheduled
    clock.set(T0 + timedelta(hours=2))  # exactly on a fire time: it is not "after"
    runner = make()
    sid = runner.add_schedule(
        wf_name, "0 */2 * * *", timezone="Europe/Berlin", context={"k": 1}, name="every2h"
    )
    sched = runner.get_schedule("every2h")
    assert sched.id == sid and sched.enabled and sched.source == "api"
    assert sched.next_fire_at == T0 + hours(3)  # 04:00 Berlin (UTC+1) is 03:00 UTC
    clock.advance(hours(0.5))
    assert fired(runner, sid) == []
    clock.advance(hours(0.5))
    settle(runner, sid, 1, until)
    until(lambda: len(seen) == 1, what="the run")
    assert seen[0]["k"] == 1
    assert seen[0]["scheduled_time"] == "2026-01-05T04:00:00+01:00"
    assert seen[0]["timezone"] == "Europe/Berlin"
    runs = [r for r in runner.list_executions() if r.workflow_name == wf_name]
    assert len(runs) == 1
    history = runner.schedule_history(sid)
    assert history[0].execution_id == runs[0].execution_id
    assert history[0].scheduled_for == T0 + hours(3)


@pytest.mark.parametrize(
    ("policy", "expect"),
    [("skip", []), ("latest", [10]), ("all", [8, 9, 10])],
)
def test_catch_up_after_downtime(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
    policy: str,
    expect: list[int],
) -> None:
    wf_name, _ = scheduled
    first = make()
    sid = first.add_schedule(wf_name, "0 * * * *", catchup=policy, max_catchup=3)
    clock.advance(hours(1))
    settle(first, sid, 1, until)
    first.shutdown()
    # Down from 01:00 to 10:30: hours 2..10 were missed.
    clock.advance(hours(9.5))
    second = make()
    want = [(T0 + hours(h)).timestamp() for h in [1, *expect]]
    until(lambda: fired(second, sid) == want, timeout=10, what=f"catch-up {policy}")
    clock.advance(hours(0.5))  # 11:00 is current again: it fires whatever the policy
    settle(second, sid, len(want) + 1, until)
    assert fired(second, sid) == [*want, (T0 + hours(11)).timestamp()]


@pytest.mark.parametrize(("policy", "expect"), [("skip", []), ("latest", [5]), ("all", [3, 4, 5])])
def test_pause_and_resume_catch_up_only_the_times_paused_over(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
    policy: str,
    expect: list[int],
) -> None:
    wf_name, _ = scheduled
    runner = make()
    sid = runner.add_schedule(wf_name, "0 * * * *", catchup=policy, max_catchup=5)
    clock.advance(hours(1))
    settle(runner, sid, 1, until)
    clock.advance(hours(1))  # 02:00 fires
    settle(runner, sid, 2, until)
    clock.advance(hours(0.5))  # at 02:30 we pause
    runner.pause_schedule(sid)
    assert runner.get_schedule(sid).enabled is False
    assert runner.get_schedule(sid).next_fire_at is None
    runner.pause_schedule(sid)  # again: nothing changes
    clock.advance(hours(3))  # 05:30: 03, 04 and 05 fell due while paused
    assert fired(runner, sid) == [(T0 + hours(h)).timestamp() for h in (1, 2)]
    runner.resume_schedule(sid)
    want = [(T0 + hours(h)).timestamp() for h in [1, 2, *expect]]
    until(lambda: fired(runner, sid) == want, timeout=10, what=f"resume {policy}")
    clock.advance(hours(0.5))
    settle(runner, sid, len(want) + 1, until)
    assert fired(runner, sid)[-1] == (T0 + hours(6)).timestamp()


def test_a_paused_schedule_resumed_before_its_missed_times_were_handled_never_fires_them(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
) -> None:
    wf_name, _ = scheduled
    # A client that fires nothing (no tasks): times fall due with nobody to fire them.
    client = make(execute_tasks=False)
    sid = client.add_schedule(wf_name, "0 * * * *", catchup="all")
    clock.advance(hours(3.5))  # 01..03 missed while nobody ran
    client.pause_schedule(sid)  # the pause is the change: times before it never fire
    clock.advance(hours(2))  # 04, 05 fall due while paused
    client.resume_schedule(sid)
    worker = make()
    want = [(T0 + hours(h)).timestamp() for h in (4, 5)]
    until(lambda: fired(worker, sid) == want, timeout=10, what="only the paused-over times")


def test_an_edit_never_fires_a_time_from_before_it(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
) -> None:
    wf_name, _ = scheduled
    client = make(execute_tasks=False)
    sid = client.add_schedule(wf_name, "0 * * * *", catchup="all", max_catchup=50)
    clock.advance(hours(5.75))  # 01..05 due, unfired (nobody runs tasks)
    updated = client.update_schedule(sid, cron="30 * * * *", timezone="Asia/Kathmandu")
    assert updated.cron == "30 * * * *" and updated.revision == 2
    # 05:45 UTC is 11:30 in Kathmandu (+05:45): the next :30 there is 12:30, 06:45 UTC.
    assert updated.next_fire_at == T0 + hours(6.75)
    worker = make()
    clock.advance(hours(1))
    settle(worker, sid, 1, until)
    assert fired(worker, sid) == [(T0 + hours(6.75)).timestamp()]
    # Changing only the context keeps the times.
    again = worker.update_schedule(sid, context={"x": 2})
    assert again.next_fire_at == updated.next_fire_at + hours(1)
    assert again.context == {"x": 2}


def test_start_and_end_bound_the_fire_times(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
) -> None:
    wf_name, _ = scheduled
    runner = make()
    sid = runner.add_schedule(
        wf_name,
        "0 * * * *",
        catchup="all",
        start=T0 + hours(3),
        end="2026-01-05T05:00:00+00:00",
    )
    assert runner.get_schedule(sid).next_fire_at == T0 + hours(3)
    clock.advance(hours(8))
    want = [(T0 + hours(h)).timestamp() for h in (3, 4, 5)]
    until(lambda: fired(runner, sid) == want, timeout=10, what="the bounded times")
    assert runner.get_schedule(sid).next_fire_at is None


def test_remove_deletes_the_schedule_and_its_history_but_not_its_runs(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
) -> None:
    wf_name, _ = scheduled
    runner = make()
    sid = runner.add_schedule(wf_name, "@hourly", name="gone-soon")
    clock.advance(hours(1))
    settle(runner, sid, 1, until)
    runner.remove_schedule("gone-soon")
    with pytest.raises(NotFoundError, match=sid):
        runner.get_schedule(sid)
    assert runner.list_schedules() == []
    clock.advance(hours(2))
    assert any(r.workflow_name == wf_name for r in runner.list_executions())
    with pytest.raises(NotFoundError):
        runner.remove_schedule(sid)


def test_bad_input_is_refused_and_stores_nothing(
    make: Callable[..., DefaultRunner], scheduled: tuple[str, Seen]
) -> None:
    wf_name, _ = scheduled
    runner = make()
    with pytest.raises(InvalidScheduleError) as bad:
        runner.add_schedule(wf_name, "0 25 * * *")
    assert bad.value.field_index == 2 and bad.value.column == 3
    assert "hour" in str(bad.value)
    with pytest.raises(InvalidScheduleError, match="Europe/Berlin"):
        runner.add_schedule(wf_name, "0 * * * *", timezone="Europe/Berln")
    with pytest.raises(WorkflowNotFoundError, match=f"did you mean '{wf_name}'"):
        runner.add_schedule(wf_name + "x", "0 * * * *")
    with pytest.raises(InvalidScheduleError, match="after its end"):
        runner.add_schedule(wf_name, "0 * * * *", start=T0 + hours(2), end=T0)
    with pytest.raises(InvalidScheduleError, match="max_catchup"):
        runner.add_schedule(wf_name, "0 * * * *", max_catchup=0)
    with pytest.raises(InvalidScheduleError, match="catch-up"):
        runner.add_schedule(wf_name, "0 * * * *", catchup="sometimes")
    with pytest.raises(InvalidScheduleError, match="context"):
        runner.add_schedule(wf_name, "0 * * * *", context={"x": object()})
    assert runner.list_schedules() == []
    sid = runner.add_schedule(wf_name, "0 * * * *", name="kept")
    with pytest.raises(InvalidScheduleError, match="exists already"):
        runner.add_schedule(wf_name, "0 * * * *", name="kept")
    with pytest.raises(InvalidScheduleError):
        runner.update_schedule(sid, cron="61 * * * *")
    with pytest.raises(InvalidScheduleError, match="max_catchup"):
        runner.update_schedule(sid, max_catchup=0)
    with pytest.raises(InvalidScheduleError, match="after its end"):
        runner.update_schedule(sid, start=T0 + hours(5), end=T0 + hours(1))
    kept = runner.get_schedule(sid)
    assert (kept.cron, kept.max_catchup, kept.start, kept.end, kept.revision) == (
        "0 * * * *",
        100,
        None,
        None,
        1,
    )


def test_next_times_and_json_round_trip(
    make: Callable[..., DefaultRunner], scheduled: tuple[str, Seen]
) -> None:
    from cloacina.service.schedules import Schedule

    wf_name, _ = scheduled
    runner = make()
    sid = runner.add_schedule(wf_name, "0 9 * * 1-5", timezone="America/New_York")
    sched = runner.get_schedule(sid)
    spec = CronSpec.parse("0 9 * * 1-5", "America/New_York")
    nxt = sched.next_times(3)
    assert [t.timestamp() for t in nxt] == list(spec.times_between(T0.timestamp(), 2e9, 3))
    assert all(t.hour == 9 for t in nxt)
    assert Schedule.from_dict(json.loads(json.dumps(sched.to_dict()))) == sched


def test_a_clock_that_jumps_back_never_fires_a_time_twice(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
) -> None:
    wf_name, _ = scheduled
    runner = make()
    sid = runner.add_schedule(wf_name, "0 * * * *", catchup="all")
    for h in (1, 2, 3):
        clock.advance(hours(1))
        settle(runner, sid, h, until)
    clock.set(T0 + hours(1.5))  # this machine's clock is behind (skew): nothing re-fires
    time.sleep(0.5)
    clock.set(T0 + hours(2.5))
    time.sleep(0.5)
    assert fired(runner, sid) == [(T0 + hours(h)).timestamp() for h in (1, 2, 3)]
    clock.set(T0 + hours(4))
    settle(runner, sid, 4, until)
    assert fired(runner, sid) == [(T0 + hours(h)).timestamp() for h in (1, 2, 3, 4)]


def test_a_daily_time_that_dst_skips_fires_once_at_the_first_valid_instant(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
) -> None:
    wf_name, seen = scheduled
    clock.set(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    runner = make()
    # 02:30 does not exist in Berlin on 2026-03-29 (clocks jump from 02:00 to 03:00), and
    # 02:30 comes twice on 2026-10-25: each fires once.
    sid = runner.add_schedule(wf_name, "30 2 * * *", timezone="Europe/Berlin", catchup="all")
    want = [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 CEST, the first valid instant
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]
    for n, at in enumerate(want, start=1):
        clock.set(at)
        settle(runner, sid, n, until)
    assert fired(runner, sid) == [t.timestamp() for t in want]
    until(lambda: len(seen) == 3, what="the runs")
    assert sorted(c["scheduled_time"] for c in seen) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    clock.set(datetime(2026, 10, 24, 12, 0, tzinfo=UTC))  # (skipped over: catch-up "all")
    settle(runner, sid, 3 + 100, until)  # at most max_catchup=100 of the missed ones
    first_fold = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, the first occurrence
    clock.set(first_fold)
    settle(runner, sid, 104, until)
    clock.set(first_fold + hours(1.5))  # past the repeated 02:30 CET: it does not fire again
    time.sleep(0.5)
    last = fired(runner, sid)[-1]
    assert last == first_fold.timestamp()


def test_a_runner_that_does_not_know_the_workflow_leaves_its_schedule_to_one_that_does(
    make: Callable[..., DefaultRunner],
    clock: FakeClock,
    scheduled: tuple[str, Seen],
    until: Callable[..., None],
) -> None:
    from cloacina.model.workflow import WorkflowCatalog

    wf_name, _ = scheduled
    client = make(execute_tasks=False)
    sid = client.add_schedule(wf_name, "0 * * * *", catchup="all")
    stranger = make(workflows=WorkflowCatalog())  # knows no workflow of this process
    clock.advance(hours(1))
    poller = stranger._schedule_poller
    assert poller is not None
    before = poller.passes
    time.sleep(2.0)
    assert fired(client, sid) == []
    assert poller.passes - before <= 4, "a due schedule it cannot fire made it spin"
    knower = make()
    until(lambda: fired(knower, sid) == [(T0 + hours(1)).timestamp()], what="the fire")
