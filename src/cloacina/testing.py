"""Helpers for testing workflows: a clock that tests move by hand.

``FakeClock(datetime(2026, 3, 29, tzinfo=UTC))`` starts at that instant and stands still until
:meth:`FakeClock.advance` or :meth:`FakeClock.set` moves it; a runner built with
``DefaultRunner(url, clock=clock)`` reads it for every time-based decision (schedules,
backfills, triggers, retry delays) and wakes when it moves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cloacina.clock import ListenerSet


def _epoch(when: datetime | float) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError(
                f"FakeClock needs an aware datetime, got naive {when.isoformat()}: "
                "add tzinfo=UTC (or another zone)"
            )
        return when.timestamp()
    return float(when)


class FakeClock:
    """A clock that only moves when told to. Thread-safe."""

    shared_with_database = False

    def __init__(self, start: datetime | float | None = None) -> None:
        self._lock = threading.Lock()
        self._now = _epoch(start) if start is not None else datetime.now(UTC).timestamp()
        self._listeners = ListenerSet()

    def now(self) -> float:
        with self._lock:
            return self._now

    def as_datetime(self) -> datetime:
        """The current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), UTC)

    def advance(self, delta: timedelta | float) -> None:
        """Move the clock forward by ``delta`` (a timedelta or seconds; never backwards)."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError(f"FakeClock.advance takes a positive step, got {seconds} s")
        with self._lock:
            self._now += seconds
        self._listeners.notify()

    def set(self, when: datetime | float) -> None:
        """Put the clock at ``when`` (forwards or, to test clock skew, backwards)."""
        with self._lock:
            self._now = _epoch(when)
        self._listeners.notify()

    def on_jump(self, listener: Callable[[], None]) -> Callable[[], None]:
        return self._listeners.add(listener)

    def __repr__(self) -> str:
        return f"FakeClock({self.as_datetime().isoformat()})"


__all__ = ["FakeClock"]
