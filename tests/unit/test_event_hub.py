"""The server's event hub against a feed that shows ids out of order, as PostgreSQL does when
a transaction that took an id commits after one that took a later id: the late event is still
delivered, once, and a long stretch of events after a hole does not stall the feed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from cloacina.runner import DefaultRunner
from cloacina.server.events import BATCH, GAP_PATIENCE, EventHub
from cloacina.service import ExecutionEvent


class Feed:
    """The three methods of DefaultRunner the hub uses, over a list of visible events."""

    def __init__(self) -> None:
        self.visible: dict[int, ExecutionEvent] = {}
        self.lock = threading.Lock()
        self.reads = 0

    def add(self, seq: int, run: str = "r1", kind: str = "task_started") -> None:
        event = ExecutionEvent(seq, run, kind, datetime.now(UTC))
        with self.lock:
            self.visible[seq] = event

    def latest_event_seq(self) -> int:
        with self.lock:
            return max(self.visible, default=0)

    def events_since(self, after: int, limit: int = 1000) -> list[ExecutionEvent]:
        with self.lock:
            self.reads += 1
            return [self.visible[s] for s in sorted(self.visible) if s > after][:limit]

    def on_events_committed(self, listener: Callable[[], None]) -> Callable[[], None]:
        return lambda: None


async def drain(queue: asyncio.Queue[ExecutionEvent], want: int, timeout: float = 5) -> list[int]:
    got: list[int] = []
    while len(got) < want:
        event = await asyncio.wait_for(queue.get(), timeout)
        got.append(event.seq)
    return got


def test_a_late_commit_is_delivered_once() -> None:
    async def scenario() -> None:
        feed = Feed()
        feed.add(1)
        hub = EventHub(cast(DefaultRunner, feed), interval=0.005)
        queue = await hub.subscribe("r1")
        feed.add(3)  # id 2 was taken by a transaction still open
        assert await drain(queue, 1) == [3]
        await asyncio.sleep(0.05)
        feed.add(2)  # it commits now
        feed.add(4)
        got = await drain(queue, 2)
        assert sorted(got) == [2, 4]
        await asyncio.sleep(0.05)
        assert queue.empty(), "an event was delivered twice"
        other = await hub.subscribe("r2")
        feed.add(5, run="r2")
        assert await drain(other, 1) == [5]
        assert queue.empty()  # another run's event is not this stream's
        hub.unsubscribe("r1", queue)
        hub.unsubscribe("r2", other)
        await hub.close()

    asyncio.run(scenario())


def test_many_events_after_a_hole_do_not_stall_the_feed() -> None:
    async def scenario() -> None:
        feed = Feed()
        hub = EventHub(cast(DefaultRunner, feed), interval=0.005)
        queue = await hub.subscribe("r1")
        feed.add(2)  # 1 never commits (rolled back)
        assert await drain(queue, 1) == [2]
        for seq in range(3, 3 + 3 * BATCH):
            feed.add(seq)
        # Well before the hole is given up on (GAP_PATIENCE), every event is there.
        got = await drain(queue, 3 * BATCH, timeout=GAP_PATIENCE / 3)
        assert got == list(range(3, 3 + 3 * BATCH))
        hub.unsubscribe("r1", queue)
        await hub.close()

    asyncio.run(scenario())


def test_the_poller_stops_when_nobody_listens() -> None:
    async def scenario() -> None:
        feed = Feed()
        hub = EventHub(cast(DefaultRunner, feed), interval=0.005)
        queue = await hub.subscribe("r1")
        await asyncio.sleep(0.05)
        hub.unsubscribe("r1", queue)
        await asyncio.sleep(0.05)
        reads = feed.reads
        await asyncio.sleep(0.1)
        assert feed.reads == reads, "the hub kept reading with no stream open"
        again = await hub.subscribe("r1")
        feed.add(7)
        assert await drain(again, 1) == [7]
        hub.unsubscribe("r1", again)
        await hub.close()

    asyncio.run(scenario())
