"""The clock every time-based decision reads: schedules, backfills, triggers, retry delays.

Production code uses :data:`SYSTEM_CLOCK`; tests pass a :class:`cloacina.testing.FakeClock`
to ``DefaultRunner(clock=...)`` and move time by hand, so months of schedule run in
milliseconds. A clock also tells listeners when its time jumps (a fake clock advanced), so
that an engine waiting for the next due time wakes at once instead of at its next poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What the engine needs of a clock."""

    #: True when decisions between machines should use the database's clock (the system
    #: clock: machines' clocks differ); False for a clock a test drives.
    shared_with_database: bool

    def now(self) -> float:
        """The current time, in seconds since the epoch (UTC)."""
        ...

    def on_jump(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` whenever the time jumps; returns a function that unsubscribes."""
        ...


def _nothing() -> None:
    return None


class SystemClock:
    """The machine's clock. Its time never jumps on request, so listeners are never called."""

    shared_with_database = True

    def now(self) -> float:
        return time.time()

    def on_jump(self, listener: Callable[[], None]) -> Callable[[], None]:
        return _nothing

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class ListenerSet:
    """Thread-safe listeners of a clock's jumps (for clocks that move on request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def add(self, listener: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
