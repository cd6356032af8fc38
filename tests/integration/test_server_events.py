"""The event hub behind the SSE streams, over real sockets: events committed by another
process's engine (a worker beside an API-only server) reach many streams at once; an event
whose id was handed out before a later one's but committed after it (PostgreSQL) still
arrives; and how long an event takes to reach a listener."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from cloacina import Context, DefaultRunner, task, workflow
from cloacina.store.tables import execution_events

from .conftest import FAST
from .server_support import Live, live_server

pytestmark = pytest.mark.timeout(120)


def read_stream(live: Live, execution_id: str, out: list[dict[str, Any]], after: int = 0) -> None:
    """Every event of a run's stream (with the time it arrived), until the server ends it."""
    headers = {
        "Authorization": f"Bearer {live.api.keys['viewer']}",
        "Accept": "text/event-stream",
    }
    if after:
        headers["Last-Event-ID"] = str(after)
    current: dict[str, Any] = {}
    with httpx.stream(
        "GET", f"{live.base}/api/v1/executions/{execution_id}/events", headers=headers, timeout=60
    ) as answer:
        assert answer.status_code == 200, answer.read()
        opened = time.time()
        for line in answer.iter_lines():
            if line.startswith("data: "):
                current = json.loads(line[6:])
                current["arrived"] = time.time()
                current["opened"] = opened
            elif line == "" and current:
                out.append(current)
                current = {}


def assert_no_listeners(live: Live) -> None:
    """Every stream that ended has left its hub (none leaks a subscription)."""
    hubs = live.api.client.app.state.cloacina_hubs  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while hubs.listeners:
        assert time.monotonic() < deadline, f"{hubs.listeners} listener(s) left behind"
        time.sleep(0.02)


def test_a_client_that_leaves_unsubscribes(sqlite_url: str, name: Callable[[str], str]) -> None:
    flow_name = name("hub_leave")
    gate = threading.Event()

    @workflow(name=flow_name)
    class flow:
        @task()
        def wait(context: Context) -> None:
            gate.wait(30)

    with live_server(sqlite_url) as live:
        execution_id = live.api.state.primary.schedule_workflow(flow_name)
        headers = {
            "Authorization": f"Bearer {live.api.keys['viewer']}",
            "Accept": "text/event-stream",
        }
        url = f"{live.base}/api/v1/executions/{execution_id}/events"
        for _ in range(3):
            with httpx.stream("GET", url, headers=headers, timeout=10) as answer:
                assert answer.status_code == 200
                next(answer.iter_lines())  # the first line arrived; then the client leaves
        assert_no_listeners(live)
        gate.set()


def test_a_workers_events_reach_many_streams(db_url: str, name: Callable[[str], str]) -> None:
    flow_name = name("hub_flow")

    @workflow(name=flow_name)
    class flow:
        @task()
        def one(context: Context) -> None:
            time.sleep(0.05)

        @task(dependencies=["one"])
        def two(context: Context) -> None:
            context.insert("done", True)

    # The server runs no tasks: a worker's engine (its own, as in another process) does, so
    # the hub hears of the events only by reading them.
    with live_server(db_url, execute=False) as live:
        worker = DefaultRunner(db_url, **FAST)
        try:
            operator = {"Authorization": f"Bearer {live.api.keys['operator']}"}
            runs = []
            for i in range(8):
                answer = httpx.post(
                    f"{live.base}/api/v1/executions",
                    json={"workflow": flow_name, "context": {"i": i}},
                    headers=operator,
                )
                assert answer.status_code == 201, answer.text
                runs.append(answer.json()["execution_id"])
            streams: dict[str, list[dict[str, Any]]] = {r: [] for r in runs}
            # Two listeners on the first run: both get everything.
            extra: list[dict[str, Any]] = []
            threads = [
                threading.Thread(target=read_stream, args=(live, r, streams[r])) for r in runs
            ]
            threads.append(threading.Thread(target=read_stream, args=(live, runs[0], extra)))
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
                assert not t.is_alive(), "a stream did not end after its run's terminal event"
            for run, events in streams.items():
                kinds = [e["type"] for e in events]
                assert kinds[0] == "execution_started", kinds
                assert kinds[-1] == "execution_completed", kinds
                assert kinds.count("task_completed") == 2
                assert {e["execution_id"] for e in events} == {run}
                stored = [e.seq for e in worker.get_events(run)]
                assert [e["seq"] for e in events] == stored
            assert [e["seq"] for e in extra] == [e["seq"] for e in streams[runs[0]]]
            # A run already over: its history, then the stream ends at once.
            again: list[dict[str, Any]] = []
            read_stream(live, runs[1], again, after=streams[runs[1]][1]["seq"])
            assert [e["seq"] for e in again] == [e["seq"] for e in streams[runs[1]][2:]]
            assert_no_listeners(live)
        finally:
            worker.shutdown()


def test_an_event_committed_late_still_arrives(
    postgres_url: str, name: Callable[[str], str]
) -> None:
    """PostgreSQL hands out ids before commit: id N can become visible after N+1. The hub
    reads the skipped id again."""
    flow_name = name("hub_gap")

    @workflow(name=flow_name)
    class flow:
        @task()
        def only(context: Context) -> None:
            context.insert("x", 1)

    with live_server(postgres_url, execute=False) as live:
        runner = live.api.state.primary
        execution_id = runner.schedule_workflow(flow_name)
        events: list[dict[str, Any]] = []
        reader = threading.Thread(target=read_stream, args=(live, execution_id, events))
        reader.start()
        deadline = time.monotonic() + 10
        while not any(e["type"] == "execution_started" for e in events):
            assert time.monotonic() < deadline, "the stream did not start"
            time.sleep(0.01)

        first_inside = threading.Event()
        second_done = threading.Event()

        def marker(kind: str) -> dict[str, Any]:
            return {"execution_id": execution_id, "event": kind, "created_at": time.time()}

        def slow_writer() -> None:
            # Takes its id now, commits after the other writer (the store's own writes send
            # their inserts with the commit, which makes this window narrow, not closed).
            with runner.store.engine.begin() as conn:
                conn.execute(insert(execution_events).values(**marker("marker_slow")))
                first_inside.set()
                second_done.wait(10)
                time.sleep(0.3)  # the hub has read the later id by now

        slow = threading.Thread(target=slow_writer)
        slow.start()
        assert first_inside.wait(10)
        with runner.store.engine.begin() as conn:
            conn.execute(insert(execution_events).values(**marker("marker_fast")))
        second_done.set()
        slow.join(10)
        runner.cancel(execution_id)
        reader.join(30)
        assert not reader.is_alive()
        kinds = [e["type"] for e in events]
        assert "marker_fast" in kinds and "marker_slow" in kinds, kinds
        assert kinds[-1] == "execution_cancelled"
        slow_seq = next(e["seq"] for e in events if e["type"] == "marker_slow")
        fast_seq = next(e["seq"] for e in events if e["type"] == "marker_fast")
        assert slow_seq < fast_seq  # the id order, though it committed second


@pytest.mark.parametrize("executor", ["server", "worker"])
def test_event_latency(sqlite_url: str, name: Callable[[str], str], executor: str) -> None:
    """Events reach a listener soon after they are committed: at once when the server's own
    engine committed them (its commit wakes the hub), within a poll when a worker did. The
    bound is loose, for a busy test machine."""
    flow_name = name("hub_latency")

    @workflow(name=flow_name)
    class flow:
        @task()
        def a(context: Context) -> None:
            time.sleep(0.1)

        @task(dependencies=["a"])
        def b(context: Context) -> None:
            time.sleep(0.1)

        @task(dependencies=["b"])
        def c(context: Context) -> None:
            time.sleep(0.1)

    with live_server(sqlite_url, execute=executor == "server") as live:
        worker = DefaultRunner(sqlite_url, **FAST) if executor == "worker" else None
        try:
            operator = {"Authorization": f"Bearer {live.api.keys['operator']}"}
            delays = []
            for _ in range(4):
                answer = httpx.post(
                    f"{live.base}/api/v1/executions", json={"workflow": flow_name}, headers=operator
                )
                events: list[dict[str, Any]] = []
                read_stream(live, answer.json()["execution_id"], events)
                for e in events:
                    at = datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp()
                    if at > e["opened"]:  # committed while the stream was open (not history)
                        delays.append(e["arrived"] - at)
            assert len(delays) >= 5, "too few events committed while a stream was open"
            delays.sort()
            p95 = delays[int(len(delays) * 0.95) - 1]
            median = delays[len(delays) // 2]
            ms = f"median {median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
            print(f"event latency ({executor}): {ms}")
        finally:
            if worker is not None:
                worker.shutdown()
        assert p95 < 0.25, f"p95 {p95 * 1000:.1f} ms from commit to listener"
