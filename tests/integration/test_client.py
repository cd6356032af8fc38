"""``cloacina.Client`` against a real server (the FastAPI app under uvicorn, in this process, on
a free loopback port) on SQLite and PostgreSQL: the same calls give the same values as
``DefaultRunner`` on the same database, errors come back as the same exception classes, and
``wait`` follows the event stream instead of polling.

The server runs in this process so that the workflows a test defines are the server's too;
a second, submit-only ``DefaultRunner`` on the same database is what the client's answers
are compared with.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloacina import Client, Context, DefaultRunner, RetryPolicy, TaskError, task, workflow
from cloacina.errors import (
    AuthenticationError,
    ExecutionNotFoundError,
    ExecutionTimeoutError,
    InvalidStateError,
    PackageError,
    PackageNotFoundError,
    PermissionDeniedError,
    RequestError,
    UnavailableError,
    WorkflowNotFoundError,
)
from cloacina.registry.registry import PackageInfo

from .client_support import Served, start_server

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def served(db_url: str) -> Iterator[Served]:
    """A server on this test's database (SQLite and PostgreSQL)."""
    yield from start_server(db_url)


@pytest.fixture
def served_sqlite(sqlite_url: str) -> Iterator[Served]:
    """A server on a SQLite file (for what does not depend on the database)."""
    yield from start_server(sqlite_url)


def define_pipeline(wf_name: str) -> None:
    @workflow(name=wf_name, description="three steps")
    class pipeline:
        @task(id="extract")
        def extract(context: Context) -> None:
            context.insert("rows", [1, 2, 3])

        @task(id="double", dependencies=["extract"])
        def double(context: Context) -> None:
            context.insert("doubled", [2 * r for r in context["rows"]])

        @task(id="total", dependencies=["double"])
        async def total(context: Context) -> None:
            context.insert("total", sum(context["doubled"]) + context.get("bonus", 0))


def define_failing(wf_name: str) -> None:
    @workflow(name=wf_name)
    class failing:
        @task(id="flaky", retry=RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False))
        def flaky(context: Context) -> None:
            raise TaskError("the source is down")

        @task(id="after", dependencies=["flaky"])
        def after(context: Context) -> None:
            pass


def define_gated(wf_name: str, gate: threading.Event) -> None:
    @workflow(name=wf_name)
    class gated:
        @task(id="hold")
        def hold(context: Context) -> None:
            gate.wait(30)

        @task(id="next", dependencies=["hold"])
        def next_step(context: Context) -> None:
            context.insert("done", True)


def test_the_same_calls_give_the_same_values(served: Served, name: Callable[[str], str]) -> None:
    wf, bad = name("pipe"), name("fail")
    define_pipeline(wf)
    define_failing(bad)
    client, local = served.client(), served.local

    result = client.execute(wf, {"bonus": 1}, timeout=30)
    assert result.status == "completed"
    assert result.final_context["total"] == 13
    assert result == local.get_execution(result.execution_id)
    assert client.get_execution(result.execution_id) == result
    assert client.find_execution(result.execution_id) == local.find_execution(result.execution_id)
    prefix = result.execution_id[:8]
    assert client.find_execution(prefix) == local.find_execution(prefix) == result
    with pytest.raises(ExecutionNotFoundError):  # a plain read takes whole ids only
        client.get_execution(prefix)
    with pytest.raises(ExecutionNotFoundError, match="no workflow execution with id or id"):
        client.find_execution("zzzz")

    failed = client.execute(bad, timeout=30)
    assert failed.status == "failed" and failed.tasks["flaky"].attempts == 2
    assert failed == local.get_execution(failed.execution_id)

    for kwargs in (
        {},
        {"limit": 1},
        {"status": "failed"},
        {"workflow_name": wf},
        {"q": failed.execution_id[:8]},
        {"since": result.created_at, "until": time.time() + 60},
    ):
        assert client.list_executions_page(**kwargs) == local.list_executions_page(**kwargs)
        assert client.list_executions(**kwargs) == local.list_executions(**kwargs)
    page = client.list_executions_page(limit=1)
    assert page.next_cursor is not None
    assert client.list_executions_page(limit=1, cursor=page.next_cursor) == (
        local.list_executions_page(limit=1, cursor=page.next_cursor)
    )

    for run in (result, failed):
        assert client.get_attempts(run.execution_id) == local.get_attempts(run.execution_id)
        assert client.get_events(run.execution_id) == local.get_events(run.execution_id)
        events = local.get_events(run.execution_id)
        after = events[1].seq
        assert client.get_events(run.execution_id, after=after, limit=2) == (
            local.get_events(run.execution_id, after=after, limit=2)
        )
    assert [a.outcome for a in client.get_attempts(failed.execution_id)][:1] == ["failed"]

    assert client.describe_workflows() == local.describe_workflows()
    assert client.list_workflows() == local.describe_workflows()
    assert client.describe_workflow(wf) == local.describe_workflow(wf)
    assert client.workflow_stats(wf) == local.workflow_stats(wf)
    assert client.workflow_stats(bad, last=1) == local.workflow_stats(bad, last=1)
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name for f in text_string_to_metric_families(client.metrics_text().decode())}
    assert any(name.startswith("cloacina_") for name in families), families
    again = asyncio.run(client.execute_async(wf, {"bonus": 2}, timeout=30))
    assert again.final_context["total"] == 14 and again == local.get_execution(again.execution_id)
    workers = {w.id: w for w in local.list_workers()}
    assert {w.id for w in client.list_workers()} == set(workers)
    assert all(w.host == workers[w.id].host for w in client.list_workers())


def test_streamed_events_are_the_stored_ones(served: Served, name: Callable[[str], str]) -> None:
    wf = name("pipe")
    define_pipeline(wf)
    client = served.client()
    execution_id = client.schedule_workflow(wf)
    streamed = list(client.stream_events(execution_id, timeout=30))
    assert streamed[-1].type == "execution_completed"
    assert streamed == served.local.get_events(execution_id)
    # Resumed after an event, as a reconnecting listener does.
    resumed = list(client.stream_events(execution_id, after=streamed[2].seq, timeout=30))
    assert resumed == streamed[3:]


def test_packages_through_the_client(
    served: Served, tmp_path: Path, make_package: Callable[..., bytes]
) -> None:
    flow = (
        "from cloacina import Context, packaged_workflow, task\n\n"
        '@packaged_workflow(name="remote_flow", package="remote_pkg")\n'
        "class remote_flow:\n"
        '    @task(id="step")\n'
        "    def step(context: Context) -> None:\n"
        '        context.insert("answer", 42)\n'
    )
    data = make_package(
        tmp_path,
        "remote_pkg",
        "1.0.0",
        {"remote_pkg/__init__.py": "", "remote_pkg/flows.py": flow},
        ["remote_pkg.flows"],
    )
    client, local = served.client(), served.local
    package_id = client.register_workflow(data)
    assert client.register_workflow(data) == package_id  # identical bytes: the same id
    assert same_packages(client.list_packages(), local.list_packages())
    [info] = client.list_packages()
    assert (info.id, info.package, info.version, info.default) == (
        package_id,
        "remote_pkg",
        "1.0.0",
        True,
    )
    assert client.get_package("remote_pkg", "1.0.0") == local.get_package("remote_pkg", "1.0.0")
    assert client.get_package_archive("remote_pkg", "1.0.0") == data

    result = client.execute("remote_flow", timeout=60)
    assert result.status == "completed" and result.final_context["answer"] == 42
    assert result.package == "remote_pkg"

    client.unregister_workflow("remote_pkg", "1.0.0")
    assert client.list_packages() == [] == local.list_packages()
    with pytest.raises(PackageNotFoundError, match="remote_pkg"):
        client.get_package("remote_pkg", "1.0.0")
    with pytest.raises(PackageError):
        client.register_workflow(b"not a package")


def test_control_through_the_client(served: Served, name: Callable[[str], str]) -> None:
    wf, gate = name("gated"), threading.Event()
    define_gated(wf, gate)
    client, local = served.client(), served.local
    try:
        execution_id = client.schedule_workflow(wf)
        deadline = time.monotonic() + 10
        while local.get_execution(execution_id).tasks["hold"].status != "running":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        client.pause(execution_id)
        assert local.get_execution(execution_id).status == "paused"
        with pytest.raises(InvalidStateError, match="paused"):
            client.pause(execution_id)
        client.resume(execution_id)
        assert local.get_execution(execution_id).status == "running"
        client.cancel(execution_id, reason="stopped by the test")
        cancelled = local.get_execution(execution_id)
        assert (cancelled.status, cancelled.error) == ("cancelled", "stopped by the test")
        assert client.wait(execution_id, timeout=10) == cancelled
        with pytest.raises(InvalidStateError, match="already cancelled"):
            client.cancel(execution_id)
    finally:
        gate.set()


def test_wait_follows_the_event_stream(served: Served, name: Callable[[str], str]) -> None:
    wf, gate = name("gated"), threading.Event()
    define_gated(wf, gate)
    client = served.client()
    seen: list[tuple[str, str, str]] = []

    def record(request: httpx.Request) -> None:
        seen.append((request.method, request.url.path, request.headers.get("accept", "")))

    client._http.event_hooks["request"].append(record)
    try:
        execution_id = client.schedule_workflow(wf)
        with pytest.raises(ExecutionTimeoutError, match="still running"):
            client.wait(execution_id, timeout=0.3)
        seen.clear()
        done: list[Any] = []
        waiter = threading.Thread(target=lambda: done.append(client.wait(execution_id, 30)))
        waiter.start()
        time.sleep(1.0)  # a polling wait would have asked many times by now
        assert seen == [("GET", f"/api/v1/executions/{execution_id}/events", "text/event-stream")]
        gate.set()
        t = time.monotonic()
        waiter.join(10)
        assert time.monotonic() - t < 2.0
        [result] = done
        assert result.status == "completed" and result.final_context["done"] is True
        # The run came with its terminal event: no request after the stream.
        assert seen[1:] == []
        assert result == served.local.get_execution(execution_id)
    finally:
        gate.set()


def test_many_threads_wait_at_once(served_sqlite: Served, name: Callable[[str], str]) -> None:
    """One client shared by 80 threads, each waiting on its own run (an open stream each,
    more than the pool keeps alive): every wait returns its run's result."""
    wf, gate = name("gated"), threading.Event()
    define_gated(wf, gate)
    client = served_sqlite.client()
    ids = [client.schedule_workflow(wf, {"i": i}) for i in range(80)]
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def wait(execution_id: str) -> None:
        try:
            results[execution_id] = client.wait(execution_id, timeout=60)
        except BaseException as exc:  # reported below
            errors.append(exc)

    waiters = [threading.Thread(target=wait, args=(i,)) for i in ids]
    try:
        for waiter in waiters:
            waiter.start()
        time.sleep(0.5)
        gate.set()
        for waiter in waiters:
            waiter.join(60)
    finally:
        gate.set()
    assert not errors, errors[:3]
    assert sorted(results) == sorted(ids)
    assert all(r.status == "completed" for r in results.values())


def test_a_silent_stream_is_reopened_within_a_deadline(
    served_sqlite: Served, name: Callable[[str], str]
) -> None:
    """With a deadline, a stream silent for SILENCE seconds is opened again after the last
    event seen (so the deadline holds whatever the socket does); the wait still ends with
    the run, and a deadline shorter than the run still raises in time."""
    from cloacina.client import SILENCE

    wf, gate = name("gated"), threading.Event()
    define_gated(wf, gate)
    client = served_sqlite.client()
    streams: list[str] = []

    def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/events"):
            streams.append(request.headers.get("last-event-id", ""))

    client._http.event_hooks["request"].append(record)
    try:
        execution_id = client.schedule_workflow(wf)
        t = time.monotonic()
        with pytest.raises(ExecutionTimeoutError):
            client.wait(execution_id, timeout=SILENCE + 0.5)
        assert time.monotonic() - t < SILENCE + 1.5
        assert len(streams) == 2 and streams[1] != ""  # reopened after the last event seen
        threading.Timer(SILENCE + 0.5, gate.set).start()
        result = client.wait(execution_id, timeout=30)
        assert result.status == "completed"
    finally:
        gate.set()


def test_errors_come_back_as_their_classes(
    served_sqlite: Served, name: Callable[[str], str]
) -> None:
    wf = name("pipe")
    define_pipeline(wf)
    client = served_sqlite.client()
    with pytest.raises(ExecutionNotFoundError, match="no-such-run"):
        client.get_execution("no-such-run")
    with pytest.raises(ExecutionNotFoundError):
        client.wait("no-such-run", timeout=5)
    with pytest.raises(ExecutionNotFoundError):
        list(client.stream_events("no-such-run"))
    with pytest.raises(WorkflowNotFoundError, match=f"did you mean '{wf}'"):
        client.schedule_workflow(wf + "x")
    with pytest.raises(RequestError, match="limit"):
        client.list_executions_page(limit=501)
    with pytest.raises(RequestError, match="limit"):
        client.list_executions(limit=501)  # as the runner's
    with pytest.raises(RequestError, match="cursor"):
        client.list_executions_page(cursor="garbage")
    with pytest.raises(RequestError, match="status"):
        client.list_executions_page(status="sideways")
    done = client.execute(wf, timeout=30)
    with pytest.raises(InvalidStateError, match="already completed"):
        client.cancel(done.execution_id)
    with pytest.raises(PackageNotFoundError):
        client.get_package_archive("nope", "1.0")

    with pytest.raises(AuthenticationError, match="API key"):
        served_sqlite.client(key="clk_" + "x" * 43).list_executions()
    with pytest.raises(AuthenticationError):
        served_sqlite.client(key="").list_executions()

    viewer = client.create_api_key("watcher", "viewer")
    as_viewer = served_sqlite.client(key=viewer.key)
    assert as_viewer.get_execution(done.execution_id) == done
    with pytest.raises(PermissionDeniedError, match="operator"):
        as_viewer.schedule_workflow(wf)
    with pytest.raises(PermissionDeniedError):
        as_viewer.list_api_keys()

    # Nothing listens on port 1: the server cannot be reached.
    with pytest.raises(UnavailableError, match="cannot reach"), Client("http://127.0.0.1:1") as c:
        c.list_executions()
    closed = served_sqlite.client()
    closed.close()
    with pytest.raises(Exception, match="closed"):
        closed.list_executions()


def test_keys_and_audit_through_the_client(served: Served, name: Callable[[str], str]) -> None:
    wf = name("pipe")
    define_pipeline(wf)
    client, local = served.client(), served.local
    created = client.create_api_key("ci-bot", "operator", expires_in=86_400)
    assert created.key.startswith("clk_") and created.key not in repr(created)
    assert created.info.name == "ci-bot" and created.info.role == "operator"
    assert created.info.expires_at is not None
    assert client.list_api_keys() == local.list_api_keys()
    assert created.info in client.list_api_keys()

    bot = served.client(key=created.key)
    run = bot.execute(wf, timeout=30)
    assert run.status == "completed"
    client.revoke_api_key(created.id)
    with pytest.raises(AuthenticationError):
        bot.get_execution(run.execution_id)

    page = client.list_audit()
    assert page == local.list_audit()
    actions = [(e.action, e.actor) for e in page.items]
    assert ("key.create", f"key:{client_key_id(local, 'test-admin')} (test-admin)") in actions
    assert any(a == "key.revoke" for a, _ in actions)
    started = [
        e for e in page.items if e.action.startswith("run.") and run.execution_id in e.target
    ]
    assert started and started[0].actor == f"key:{created.id} (ci-bot)"
    assert (
        client.list_audit(action="key.*", limit=1).items
        == local.list_audit(action="key.*", limit=1).items
    )


def same_packages(remote: list[PackageInfo], here: list[PackageInfo]) -> bool:
    """Equal, but for ``registered_at`` (epoch seconds, a float: over the wire it is ISO 8601
    with microseconds, so it comes back within a microsecond)."""

    def norm(infos: list[PackageInfo]) -> list[PackageInfo]:
        return [dataclasses.replace(i, registered_at=round(i.registered_at, 5)) for i in infos]

    return norm(remote) == norm(here)


def client_key_id(local: DefaultRunner, key_name: str) -> str:
    return next(k.id for k in local.list_api_keys() if k.name == key_name)


def test_the_client_acts_in_the_tenant_it_names(served: Served, name: Callable[[str], str]) -> None:
    """``Client(tenant=...)`` sends the tenant header: a key for every tenant acts in the one
    named; a key bound to a tenant acts in it without naming it, and naming another is
    refused (403)."""
    from cloacina.service.tenants import create_tenant

    wf = name("pipe")
    define_pipeline(wf)
    tenant = f"t{name('x')[-8:]}"
    create_tenant(served.db_url, tenant)
    acme = served.client(tenant=tenant)
    execution_id = acme.schedule_workflow(wf)
    with DefaultRunner(served.db_url, tenant=tenant, execute_tasks=False) as there:
        assert there.get_execution(execution_id).workflow_name == wf
    with pytest.raises(ExecutionNotFoundError):
        served.client().get_execution(execution_id)  # not in public
    assert acme.get_execution(execution_id).tenant == tenant

    bound = served.local.create_api_key("bound", "viewer", tenant=tenant).key
    assert served.client(key=bound).get_execution(execution_id).execution_id == execution_id
    with pytest.raises(PermissionDeniedError, match=tenant):
        served.client(key=bound, tenant="public").list_executions()
