"""Server-Sent Events of a run, fed by one event hub per tenant.

A hub reads the events of *every* run of its tenant after the last one it saw (one range
read of the events' primary key, :meth:`~cloacina.runner.DefaultRunner.events_since`), every
:data:`POLL_INTERVAL` while anyone listens and at once when this process's engine commits
events, and hands each to the streams of its run. A thousand open streams cost one query per
poll, not a thousand.

PostgreSQL hands out event ids before commit, so a later id can become visible before an
earlier one: the hub remembers the ids it skipped over for :data:`GAP_PATIENCE` seconds and
reads them again, so a slow transaction's event still reaches its listeners.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from cloacina.runner import DefaultRunner
from cloacina.service import ExecutionEvent

log = logging.getLogger("cloacina.server")

T = TypeVar("T")

#: Seconds between two reads while streams are open and nothing woke the hub.
POLL_INTERVAL = 0.02
#: Seconds an id skipped over (not yet committed) is looked for again.
GAP_PATIENCE = 5.0
#: Events read at most per poll.
BATCH = 1000
#: Seconds of silence after which a stream sends a comment (keeps proxies from closing it)
#: and checks its run is still going.
KEEPALIVE = 15.0

#: The key under which a listener gets the events of every run of the tenant (the web UI's
#: runs list): :meth:`EventHub.subscribe` with it instead of a run's id.
ALL_RUNS = "*"

TERMINAL_EVENTS = frozenset({"execution_completed", "execution_failed", "execution_cancelled"})
#: The status a task has after each task event (what a live page shows without a read).
TASK_STATUS_AFTER = {
    "task_started": "running",
    "task_completed": "completed",
    "task_failed": "failed",
    "task_skipped": "skipped",
    "task_abandoned": "failed",
    "task_retry_scheduled": "ready",
    "task_recovered": "ready",
    "task_handed_back": "ready",
}


def iso(value: Any) -> str | None:
    """A datetime as ISO 8601 in UTC with ``Z``."""
    if value is None:
        return None
    text: str = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def event_json(event: ExecutionEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "execution_id": event.execution_id,
        "type": event.type,
        "task_id": event.task_id,
        "attempt": event.attempt,
        "detail": event.detail,
        "at": iso(event.at),
    }


def sse_frame(event: ExecutionEvent, extra: dict[str, Any] | None = None) -> bytes:
    """One Server-Sent Event: ``id`` the sequence number, ``event`` the type, ``data`` JSON
    (the event's fields, and ``extra``'s)."""
    doc = event_json(event)
    if extra:
        doc.update(extra)
    data = json.dumps(doc, separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


async def terminal_frame(runner: DefaultRunner, event: ExecutionEvent) -> bytes:
    """The frame of a run's terminal event, its data carrying the run as ``GET
    /api/v1/executions/{id}`` gives it (``result``): a client waiting for the run has it
    without asking again (a round trip less)."""
    from cloacina.server.views import result_json  # views imports this module

    result = await run_in_threadpool(runner.get_execution, event.execution_id)
    return sse_frame(event, {"result": result_json(result)})


class EventHub:
    """The event reader of one tenant's runner, shared by all the streams of that tenant."""

    def __init__(self, runner: DefaultRunner, interval: float = POLL_INTERVAL) -> None:
        self.runner = runner
        self.interval = interval
        self._queues: dict[str, set[asyncio.Queue[ExecutionEvent]]] = {}
        self._last = 0
        self._gaps: dict[int, float] = {}  # skipped id -> monotonic time it was first missed
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unhook: Callable[[], None] | None = None
        self._starting: asyncio.Lock = asyncio.Lock()

    @property
    def listeners(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def subscribe(self, execution_id: str) -> asyncio.Queue[ExecutionEvent]:
        """A queue that receives the run's events committed from now on (and perhaps a few
        before: a stream drops the sequence numbers it has sent)."""
        queue: asyncio.Queue[ExecutionEvent] = asyncio.Queue()
        async with self._starting:
            if self._task is None:
                # The baseline is read before the caller reads the run's history, so nothing
                # falls between the two.
                self._last = await run_in_threadpool(self.runner.latest_event_seq)
                self._gaps.clear()
                self._loop = asyncio.get_running_loop()
                self._wake = asyncio.Event()
                self._unhook = self.runner.on_events_committed(self._poke)
                self._task = asyncio.create_task(self._run(), name="cloacina-event-hub")
            self._queues.setdefault(execution_id, set()).add(queue)
        return queue

    def unsubscribe(self, execution_id: str, queue: asyncio.Queue[ExecutionEvent]) -> None:
        queues = self._queues.get(execution_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[execution_id]
        if not self._queues:
            self._wake.set()  # the poller sees nobody listens and stops

    def wake(self) -> None:
        """Read now (from the event loop's thread)."""
        self._wake.set()

    def _poke(self) -> None:
        # On the engine's thread: hand the wake-up to the event loop.
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop closed: the server is gone
                pass

    async def _run(self) -> None:
        try:
            while self._queues:
                try:
                    await self._poll()
                except Exception as exc:  # the database hiccuped: keep the streams, retry
                    log.warning("event hub: reading events failed: %s", exc)
                    await asyncio.sleep(min(1.0, self.interval * 25))
                if not self._queues:
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            async with self._starting:
                self._task = None
                if self._unhook is not None:
                    self._unhook()
                    self._unhook = None
                if self._queues:  # a subscriber arrived while this one was stopping
                    # Carry on from the last event read: the newcomer read its history
                    # after subscribing, so nothing it lacks lies before that.
                    self._unhook = self.runner.on_events_committed(self._poke)
                    self._task = asyncio.create_task(self._run(), name="cloacina-event-hub")

    async def _poll(self) -> None:
        now = time.monotonic()
        for gap, since in list(self._gaps.items()):
            if now - since > GAP_PATIENCE:
                del self._gaps[gap]  # rolled back, or never used: ids have holes
        last = self._last
        # Skipped ids are looked for in one read of the ids from the lowest one on: as ids
        # are unique, ``span`` rows from it hold every id of the span that exists.
        low = min(self._gaps) if self._gaps else 0
        span = min(BATCH, max(self._gaps) - low + 1) if self._gaps else 0

        def read() -> tuple[list[ExecutionEvent], list[ExecutionEvent]]:
            fresh = self.runner.events_since(last, BATCH)
            late = self.runner.events_since(low - 1, span) if span else []
            return fresh, late

        fresh, late = await run_in_threadpool(read)
        for event in late:
            if self._gaps.pop(event.seq, None) is not None:
                self._deliver(event)
        expected = last + 1
        for event in fresh:
            if event.seq <= self._last:
                continue  # delivered already
            # (A jump of more than a batch is holes, not transactions still open.)
            for missing in range(max(expected, event.seq - BATCH), event.seq):
                self._gaps.setdefault(missing, now)
            expected = event.seq + 1
            self._last = event.seq
            self._deliver(event)
        if len(fresh) >= BATCH:
            self._wake.set()  # more to read

    def _deliver(self, event: ExecutionEvent) -> None:
        for queue in self._queues.get(event.execution_id, ()):
            queue.put_nowait(event)
        for queue in self._queues.get(ALL_RUNS, ()):
            queue.put_nowait(event)

    async def close(self) -> None:
        task = self._task
        self._queues.clear()
        self._wake.set()
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass


class Hubs:
    """One :class:`EventHub` per tenant's runner."""

    def __init__(self) -> None:
        self._hubs: dict[int, EventHub] = {}

    @property
    def listeners(self) -> int:
        """Open streams, over every tenant."""
        return sum(hub.listeners for hub in self._hubs.values())

    def of(self, runner: DefaultRunner) -> EventHub:
        hub = self._hubs.get(id(runner))
        if hub is None:
            hub = self._hubs[id(runner)] = EventHub(runner)
        return hub

    async def close(self) -> None:
        for hub in list(self._hubs.values()):
            await hub.close()
        self._hubs.clear()


async def open_stream(
    runner: DefaultRunner, hub: EventHub, execution_id: str, after: int
) -> tuple[asyncio.Queue[ExecutionEvent], list[ExecutionEvent]]:
    """Subscribe to a run's events, then read its history after ``after`` (an unknown run
    raises here, before any response starts). Subscribing first means nothing committed
    between the two is missed; the stream drops what it gets twice."""
    queue = await hub.subscribe(execution_id)
    try:
        history = await run_in_threadpool(runner.get_events, execution_id, after)
    except BaseException:
        hub.unsubscribe(execution_id, queue)
        raise
    return queue, history


async def event_stream(
    runner: DefaultRunner,
    hub: EventHub,
    execution_id: str,
    after: int,
    opened: tuple[asyncio.Queue[ExecutionEvent], list[ExecutionEvent]],
    stopping: Callable[[], bool],
) -> AsyncIterator[bytes]:
    """The SSE frames of a run's events after ``after``: its history, then as they are
    committed; ends after the run's terminal event (or when the server stops)."""
    queue, history = opened
    try:
        sent = after
        for event in history:
            if event.type in TERMINAL_EVENTS:
                yield await terminal_frame(runner, event)
                return
            yield sse_frame(event)
            sent = max(sent, event.seq)
        seen: set[int] = {e.seq for e in history}
        idle = 0.0
        while not stopping():
            try:
                event = await asyncio.wait_for(queue.get(), 0.5)
            except TimeoutError:
                idle += 0.5
                if idle >= KEEPALIVE:
                    idle = 0.0
                    yield b": keepalive\n\n"
                    status = await run_in_threadpool(runner.get_execution_status, execution_id)
                    if status.is_terminal:
                        # Its end is committed: whatever the hub missed, the history has.
                        for late in await run_in_threadpool(runner.get_events, execution_id, sent):
                            if late.seq not in seen:
                                if late.type in TERMINAL_EVENTS:
                                    yield await terminal_frame(runner, late)
                                    return
                                yield sse_frame(late)
                        return
                continue
            idle = 0.0
            if event.seq <= after or event.seq in seen:
                continue
            seen.add(event.seq)
            sent = max(sent, event.seq)
            if event.type in TERMINAL_EVENTS:
                yield await terminal_frame(runner, event)
                return
            yield sse_frame(event)
    finally:
        hub.unsubscribe(execution_id, queue)


async def until_stopped(
    source: AsyncIterator[T], stopping: Callable[[], bool], check: float = 0.5
) -> AsyncIterator[T]:
    """The items of ``source`` until it ends or ``stopping()`` turns true (checked every
    ``check`` seconds even while ``source`` waits), so that a follow stream never holds a
    stopping server up."""
    queue: asyncio.Queue[tuple[bool, T | None]] = asyncio.Queue(maxsize=16)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put((False, item))
        finally:
            await queue.put((True, None))

    task = asyncio.create_task(pump())
    try:
        while not stopping():
            try:
                done, item = await asyncio.wait_for(queue.get(), check)
            except TimeoutError:
                continue
            if done:
                break
            yield item  # type: ignore[misc]
        await asyncio.sleep(0)  # let a failed source's task finish, to raise its error
        failure = task.exception() if task.done() and not task.cancelled() else None
        if failure is not None:
            raise failure
    finally:
        task.cancel()


__all__ = [
    "ALL_RUNS",
    "EventHub",
    "Hubs",
    "event_json",
    "event_stream",
    "iso",
    "open_stream",
    "sse_frame",
    "terminal_frame",
    "until_stopped",
]
