"""Firing cron schedules: every runner that executes tasks fires the due ones.

A :class:`SchedulePoller` runs on a thread of its own (never the engine's loop) and sleeps
until the earliest next time of the enabled schedules, read from the database (at most
:data:`IDLE_CHECK` seconds, so that schedules added or changed by other processes are seen,
and at once when this process changes one or the clock jumps). A schedule is due when its
``next_fire_at`` has come, by the runner's clock: the database's when it is the system
clock (machines' clocks differ), the clock's own otherwise (a test's FakeClock).

Each due schedule is fired by ``fire(schedule_id, now)`` in one transaction (see
:meth:`cloacina.service.schedules.ScheduleService._fire_schedule`): the schedule's row
locked, a fire row and a run per time the catch-up policy picks (:func:`plan_fires`), the
row moved on. The unique ``(schedule, time)`` key makes another runner's insert of the same
time do nothing, so each time fires exactly once however many runners share the database.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cloacina.clock import Clock
from cloacina.model.cron import CronSpec, catchup_times
from cloacina.store.base import Store
from cloacina.store.schedules import ScheduleRow

log = logging.getLogger("cloacina.schedules")

#: How often (seconds, at most) the poller reads the next due time from the database when
#: nothing is due sooner: schedules added or changed by other processes.
IDLE_CHECK = 1.0
#: How many due schedules one pass takes (the next pass follows at once if there are more).
BATCH = 100


@functools.lru_cache(maxsize=1024)
def spec_for(expression: str, timezone: str) -> CronSpec:
    """The parsed cron expression (cached: schedules keep theirs for long)."""
    return CronSpec.parse(expression, timezone)


def next_fire_time(
    spec: CronSpec, after: float, start: float | None, end: float | None
) -> float | None:
    """A schedule's first time strictly after ``after`` within its bounds (``start`` and
    ``end`` inclusive); None if there is none."""
    floor = after if start is None else max(after, math.ceil(start) - 1)
    found = spec.next_after(floor)
    if found is None or (end is not None and found > end):
        return None
    return found


def plan_fires(row: ScheduleRow, now: float) -> tuple[list[float], float, float | None]:
    """What to do with a due schedule at ``now``: the times to fire (its catch-up policy
    picks among the missed ones; see :func:`cloacina.model.cron.catchup_times`), the new
    anchor (every time up to it is handled) and the next time after it."""
    spec = spec_for(row.cron, row.timezone)
    anchor = max(row.anchor_at, now)
    times = catchup_times(
        spec,
        row.anchor_at,
        now,
        row.catchup,
        row.max_catchup,
        start=row.start_at,
        end=row.end_at,
    )
    return times, anchor, next_fire_time(spec, anchor, row.start_at, row.end_at)


def scheduled_context(row: ScheduleRow, scheduled_for: float) -> dict[str, Any]:
    """The context of a scheduled run: the schedule's, plus ``scheduled_time`` (ISO 8601
    in the schedule's zone, with its offset), ``schedule_id`` and ``timezone``."""
    context: dict[str, Any] = json.loads(row.context or "{}")
    local = datetime.fromtimestamp(scheduled_for, spec_for(row.cron, row.timezone).zone)
    context.update(scheduled_time=local.isoformat(), schedule_id=row.id, timezone=row.timezone)
    return context


class SchedulePoller:
    """Fires the due schedules of a database from this process.

    ``fire(schedule_id, now)`` fires one (``now``: the time to judge by, None for the
    database's clock) and returns False when this process could not (its workflow is
    unknown here, or another runner holds it right now).
    """

    def __init__(
        self, store: Store, clock: Clock, fire: Callable[[str, float | None], bool]
    ) -> None:
        self.store = store
        self.clock = clock
        self._fire = fire
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cloacina-schedules", daemon=True)
        self._unjump: Callable[[], None] = lambda: None
        #: Passes over the database (for tests: an idle poller must not spin).
        self.passes = 0

    def start(self) -> None:
        self._unjump = self.clock.on_jump(self.wake)
        self._thread.start()

    def wake(self) -> None:
        """Look at the schedules now (thread-safe): one changed, or the clock jumped."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._unjump()
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _now(self) -> float | None:
        return None if self.clock.shared_with_database else self.clock.now()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                pause = self._tick()
            except Exception as exc:  # the database may be briefly unavailable
                log.warning("firing schedules failed (will retry): %s", exc)
                pause = IDLE_CHECK
            if pause > 0:
                self._wake.wait(pause)

    def _tick(self) -> float:
        """Fire what is due; return how long to sleep until the next due time."""
        self.passes += 1
        now = self._now()
        due = self.store.schedules_due(now, BATCH)
        # In an order of our own: runners that wake together then mostly lock different
        # schedules instead of queueing (or skipping) behind one another on the same ones.
        random.shuffle(due)
        blocked = False
        for schedule_id in due:
            if self._stop.is_set():
                return 0.0
            try:
                if not self._fire(schedule_id, now):
                    blocked = True
            except Exception:
                log.exception("firing schedule %s failed (will retry)", schedule_id)
                blocked = True
        if len(due) >= BATCH and not blocked:
            return 0.0  # more are due
        upcoming, at = self.store.next_schedule_time(self._now())
        # (A millisecond past the due time: a timer that ends a hair early finds it due.)
        pause = IDLE_CHECK if upcoming is None else min(IDLE_CHECK, upcoming - at + 0.001)
        return max(pause, 0.0)


__all__ = [
    "IDLE_CHECK",
    "SchedulePoller",
    "next_fire_time",
    "plan_fires",
    "scheduled_context",
    "spec_for",
]
