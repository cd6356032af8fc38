"""Every run's new events at once, and whether the database is ready: what a server's event
hub and its readiness check need. Mixed into ``DefaultRunner``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from cloacina.service.executions import event_of
from cloacina.service.types import ExecutionEvent

if TYPE_CHECKING:
    from cloacina.engine.engine import Engine
    from cloacina.store.base import Store

log = logging.getLogger("cloacina.service")


class EventFeed:
    """The events of all the tenant's runs by sequence number, and a hook on this process's
    commits of them."""

    if TYPE_CHECKING:
        store: Store
        _engine: Engine

    def latest_event_seq(self) -> int:
        """The sequence number of the newest event of any run (0: none yet)."""
        return self.store.last_event_id()

    def events_since(self, after: int, limit: int = 1000) -> list[ExecutionEvent]:
        """Events of every run with a sequence number above ``after``, oldest first (at most
        ``limit``): one range read of the events' primary key, however many runs."""
        return [event_of(row) for row in self.store.events_after(after, limit)]

    def on_events_committed(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` whenever this process's engine has committed events (on the
        engine's thread, so it must return at once); returns a function that removes it.
        Events committed by other processes are not announced: poll :meth:`events_since`."""
        return self._engine.add_commit_listener(listener)

    def database_ready(self) -> bool:
        """Whether the database answers and its schema is this version's."""
        try:
            return self.store.schema_current()
        except Exception as exc:  # unreachable, refused, locked: not ready, whatever the cause
            log.warning("readiness check failed: %s", type(exc).__name__)
            return False
