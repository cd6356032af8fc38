"""Polling triggers: call each due poll function once, off the engine's loop.

A :class:`TriggerPoller` runs on a thread of its own (never the engine's loop: a slow poll
function must not delay a task) and calls poll functions on a small pool of daemon threads,
so one slow or hanging function holds up neither the others nor the engine. A trigger is due
when its ``next_poll_at`` has come, by the runner's clock (the database's when the clock is
the system's, so that machines whose clocks differ agree). Of the runners that know a due
trigger, the one whose claim moves its ``next_poll_at`` on polls it. A function that raises
is logged with its traceback and waits ``interval * 2**failures`` (at most an hour, never less
than its interval) before its next poll; its first success resets that.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cloacina.clock import Clock
from cloacina.engine.liveness import storable_text
from cloacina.engine.threads import TaskThreads
from cloacina.store.base import Store
from cloacina.store.triggers import TriggerClaim

log = logging.getLogger("cloacina.triggers")

#: The longest wait between two polls of a failing trigger (seconds), unless its own
#: interval is longer.
MAX_BACKOFF = 3600.0
#: How often (seconds, at most) the poller looks at the database when nothing is due in
#: this process: triggers resumed, or polled, by other processes.
IDLE_CHECK = 1.0
#: How much of a failed poll's traceback is kept in ``triggers.last_error``.
MAX_ERROR_CHARS = 8000


class Pollable(Protocol):
    """What the poller needs of a trigger: its name, interval and poll function (called on
    a poll thread; it returns the context of the run to start, or None)."""

    @property
    def name(self) -> str: ...

    @property
    def poll_interval(self) -> float: ...

    def poll(self) -> dict[str, Any] | None: ...


def backoff(interval: float, failures: int) -> float:
    """The wait after the ``failures``-th failure in a row: doubling, capped at an hour
    (never less than the trigger's own interval)."""
    if failures <= 0:
        return interval
    return max(interval, min(interval * 2.0 ** min(failures, 40), MAX_BACKOFF))


class TriggerPoller:
    """Polls the due triggers this process knows.

    ``known()`` returns them by name (only those: a worker without a trigger's code never
    claims its polls); ``fire(trigger, context)`` starts a run (or, for a context whose run
    is still active, nothing) and returns its execution id.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        known: Callable[[], Mapping[str, Pollable]],
        fire: Callable[[Any, dict[str, Any]], str | None],
        *,
        threads: int = 16,
    ) -> None:
        self.store = store
        self.clock = clock
        self._known = known
        self._fire = fire
        # Threads start when polls need them: a few hung functions leave the others some.
        self._pool = TaskThreads(threads, name="cloacina-trigger")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy: set[str] = set()  # triggers whose poll runs in this process right now
        self._busy_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cloacina-triggers", daemon=True)
        self._unjump: Callable[[], None] = lambda: None
        #: Polls finished by this poller (for tests and metrics): calls, failures, runs started.
        self.polls = 0
        self.failures = 0
        self.fired = 0

    def start(self) -> None:
        self._unjump = self.clock.on_jump(self.wake)
        self._thread.start()

    def wake(self) -> None:
        """Look for due triggers now (thread-safe): the clock jumped, a trigger resumed."""
        self._wake.set()

    def stop(self, grace: float = 5.0) -> None:
        """Stop polling; wait up to ``grace`` seconds for the polls running now, so that
        the runs they ask for are started (a function that took something from a queue
        must not lose it). A poll still running after that ends on its (daemon) thread."""
        self._unjump()
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + grace
        if self._thread.is_alive():
            self._thread.join(max(grace, 1.0))
        while time.monotonic() < deadline:
            with self._busy_lock:
                if not self._busy:
                    break
            time.sleep(0.01)
        self._pool.shutdown()

    def _now(self) -> float | None:
        """The time due-ness is judged by: the clock's, or None for the database's."""
        return None if self.clock.shared_with_database else self.clock.now()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                pause = self._tick()
            except Exception as exc:  # the database may be briefly unavailable
                log.warning("polling triggers failed (will retry): %s", exc)
                pause = IDLE_CHECK
            self._wake.wait(pause)

    def _tick(self) -> float:
        """Claim and start the due polls; return how long to sleep."""
        known = dict(self._known())
        if not known:
            return IDLE_CHECK * 5
        with self._busy_lock:
            idle = [name for name in known if name not in self._busy]
        now = self._now()
        for name in self.store.due_triggers(idle, now):
            trig = known[name]
            claim = self.store.claim_trigger_poll(name, trig.poll_interval, now)
            if claim is None:  # another runner took it (or it was paused) meanwhile
                continue
            with self._busy_lock:
                self._busy.add(name)
            try:
                self._pool.submit(self._poll, (trig, claim), _nothing)
            except RuntimeError:  # shutting down
                with self._busy_lock:
                    self._busy.discard(name)
                return IDLE_CHECK
        return self._pause(idle)

    def _pause(self, idle: list[str]) -> float:
        """Until the next poll is due, by this process's idea of the time (at most
        :data:`IDLE_CHECK`: other processes resume triggers and move polls)."""
        if not self.clock.shared_with_database:
            # A clock a test moves: what becomes due, becomes due when it jumps (which
            # wakes us); the check still runs now and then for other processes' changes.
            return IDLE_CHECK
        upcoming = self.store.next_trigger_poll(idle)
        if upcoming is None:
            return IDLE_CHECK
        return min(max(upcoming - time.time(), 0.005), IDLE_CHECK)

    def _poll(self, item: tuple[Pollable, TriggerClaim]) -> None:
        trig, claim = item
        try:
            self._poll_once(trig, claim)
        finally:
            with self._busy_lock:
                self._busy.discard(trig.name)
            if not self._stop.is_set():
                self._wake.set()  # its next poll may be due already (a short interval)

    def _poll_once(self, trig: Pollable, claim: TriggerClaim) -> None:
        started = time.monotonic()
        try:
            context = trig.poll()
            execution_id = None if context is None else self._fire(trig, context)
        except Exception as exc:
            self.failures += 1
            self._failed(trig, claim, exc)
            return
        finally:
            self.polls += 1
        if execution_id is not None:
            self.fired += 1
            log.info(
                "trigger %r started run %s (poll took %.3fs)",
                trig.name,
                execution_id,
                time.monotonic() - started,
            )
        elif claim.failures:  # starting a run resets the failures in its transaction
            try:
                self.store.record_trigger_success(trig.name, self._wall())
            except Exception as exc:
                log.warning("could not record trigger %r's recovery: %s", trig.name, exc)

    def _failed(self, trig: Pollable, claim: TriggerClaim, exc: BaseException) -> None:
        failures = claim.failures + 1
        delay = backoff(trig.poll_interval, failures)
        text = "".join(traceback.format_exception(exc)).rstrip()
        log.error(
            "trigger %r failed (%d time(s) in a row); next poll in %gs:\n%s",
            trig.name,
            failures,
            delay,
            text,
        )
        if len(text) > MAX_ERROR_CHARS:  # the end of a traceback says the most
            text = "...\n" + text[-MAX_ERROR_CHARS:]
        try:
            self.store.record_trigger_failure(
                trig.name,
                failures,
                storable_text(text) or "",
                claim.polled_at + delay,
                self._wall(),
            )
        except Exception as store_exc:
            log.warning("could not record trigger %r's failure: %s", trig.name, store_exc)

    def _wall(self) -> float:
        return self.clock.now()


def _nothing(_result: object) -> None:
    return None
