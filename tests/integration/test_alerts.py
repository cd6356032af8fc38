"""Alerting end to end, on SQLite and PostgreSQL: a local webhook receiver (``http.server``
on a thread) gets the alerts, checks their signatures, and answers as each test wants
(failures first, or not at all)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cloacina import Context, DefaultRunner, RetryPolicy, task, workflow
from cloacina.errors import ConflictError, NotFoundError, RequestError
from cloacina.service.alerts import Alert, verify_signature

pytestmark = pytest.mark.timeout(90)

RunnerFactory = Callable[..., DefaultRunner]
RETRY3 = RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=False)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """A webhook on 127.0.0.1: records every POST and answers with the next of ``codes``
    (then 200), after ``delay`` seconds."""

    codes: list[int] = field(default_factory=list)
    delay: float = 0.0
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def record(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.got.append(Received(headers, body, time.time()))
            return self.codes.pop(0) if self.codes else 200

    def of_rule(self, rule: str) -> list[Received]:
        with self.lock:
            return [r for r in self.got if r.payload["rule"] == rule]

    def wait_for(self, count: int, rule: str | None = None, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.of_rule(rule) if rule else self.got) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"the receiver got {self.got!r}, not {count} alert(s) of {rule}")
            time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code = rec.record(dict(self.headers.items()), body)
            if rec.delay:
                time.sleep(rec.delay)
            try:
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"try again")
            except OSError:  # the client gave up waiting
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield rec
    server.shutdown()
    server.server_close()


def failing_workflow(name: str, calls: list[int] | None = None) -> str:
    @workflow(name=name)
    class Failing:
        @task(retry=RETRY3)
        def boom(context: Context) -> None:
            if calls is not None:
                calls.append(1)
            raise ValueError("boom")

    return name


def test_a_run_failed_after_three_attempts_is_one_signed_alert(
    make_runner: RunnerFactory, receiver: Receiver, name: Callable[[str], str]
) -> None:
    runner = make_runner()
    channel = runner.add_alert_channel("ops", receiver.url)
    assert channel.secret and len(channel.secret) >= 32
    seen: list[Alert] = []
    runner.on_alert(seen.append)
    calls: list[int] = []
    wf = failing_workflow(name("fails"), calls)

    result = runner.execute(wf, timeout=20)
    assert result.status == "failed"
    assert len(calls) == 3 and result.tasks["boom"].attempts == 3

    receiver.wait_for(1)
    time.sleep(0.5)  # room for a duplicate, were there one
    assert len(receiver.got) == 1, receiver.got
    hit = receiver.got[0]
    assert verify_signature(channel.secret, hit.body, hit.headers["X-Cloacina-Signature"])
    assert not verify_signature(
        "another secret entirely", hit.body, hit.headers["X-Cloacina-Signature"]
    )
    assert hit.headers["X-Cloacina-Signature"].startswith("sha256=")
    payload = hit.payload
    assert payload["rule"] == "run_failed"
    assert payload["execution_id"] == result.execution_id
    assert payload["workflow"] == wf
    assert payload["failed_tasks"] == ["boom"]
    assert "boom" in payload["error"]
    assert hit.headers["X-Cloacina-Alert-Id"] == payload["id"]
    assert abs(int(hit.headers["X-Cloacina-Timestamp"]) - time.time()) < 30
    assert channel.secret not in hit.body.decode()

    # The callback got the same alert, once.
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [a.id for a in seen] == [payload["id"]]
    assert seen[0].execution_id == result.execution_id

    deliveries = runner.list_alert_deliveries()
    assert len(deliveries) == 1
    assert deliveries[0].status_code == 200 and deliveries[0].alert_status == "delivered"
    assert deliveries[0].channel == "ops" and deliveries[0].rule == "run_failed"


def test_a_webhook_that_fails_is_retried_with_backoff(
    make_runner: RunnerFactory, receiver: Receiver, name: Callable[[str], str]
) -> None:
    receiver.codes = [500, 503]
    runner = make_runner(alert_retry_delay=0.3)
    runner.add_alert_channel("flaky", receiver.url, rules=["run_failed"])
    runner.execute(failing_workflow(name("flaky")), timeout=20)

    receiver.wait_for(3)
    times = [r.at for r in receiver.got]
    # The second attempt waited the retry delay, the third twice that.
    assert times[1] - times[0] >= 0.3 - 0.05
    assert times[2] - times[1] >= 0.6 - 0.05
    assert len({r.payload["id"] for r in receiver.got}) == 1  # the same alert each time
    deadline = time.monotonic() + 5
    while True:
        deliveries = sorted(runner.list_alert_deliveries(), key=lambda d: d.attempt)
        if (deliveries and deliveries[-1].status_code == 200) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert [(d.attempt, d.status_code) for d in deliveries] == [(1, 500), (2, 503), (3, 200)]
    assert deliveries[0].error and "500" in deliveries[0].error
    assert all(d.alert_status == "delivered" for d in deliveries)
    time.sleep(0.5)
    assert len(receiver.got) == 3


def test_a_webhook_that_always_fails_is_given_up_after_max_attempts(
    make_runner: RunnerFactory, receiver: Receiver, name: Callable[[str], str]
) -> None:
    receiver.codes = [500] * 10
    runner = make_runner(alert_retry_delay=0.05, alert_max_attempts=2)
    runner.add_alert_channel("down", receiver.url)
    runner.execute(failing_workflow(name("down")), timeout=20)
    receiver.wait_for(2)
    deadline = time.monotonic() + 5
    while runner.list_alerts(status="failed") == [] and time.monotonic() < deadline:
        time.sleep(0.02)
    (alert,) = runner.list_alerts()
    assert alert.status == "failed" and alert.attempts == 2
    assert alert.last_error and "500" in alert.last_error
    time.sleep(0.5)
    assert len(receiver.got) == 2


def test_a_hanging_webhook_never_slows_task_execution(
    make_runner: RunnerFactory, receiver: Receiver, name: Callable[[str], str]
) -> None:
    receiver.delay = 30.0  # far past the alert timeout: the request hangs
    runner = make_runner(alert_timeout=1.0, alert_retry_delay=60)
    runner.add_alert_channel("hangs", receiver.url)
    ok_name = name("quick")

    @workflow(name=ok_name)
    class Quick:
        @task
        def a(context: Context) -> None:
            context.insert("a", 1)

        @task(dependencies=[a])
        def b(context: Context) -> None:
            context.insert("b", 2)

    runner.execute(failing_workflow(name("hang")), timeout=20)
    receiver.wait_for(1)  # the delivery is under way, and hangs
    started = time.monotonic()
    for _ in range(20):
        assert runner.execute(ok_name, timeout=10).status == "completed"
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"20 quick runs took {elapsed:.2f}s beside a hanging webhook"
    # The hanging attempt timed out and is logged as such.
    deadline = time.monotonic() + 10
    while not runner.list_alert_deliveries() and time.monotonic() < deadline:
        time.sleep(0.05)
    (attempt,) = runner.list_alert_deliveries()
    assert attempt.status_code is None and attempt.error == "no answer within 1s"
    assert attempt.duration is not None and attempt.duration < 5


def test_a_run_past_its_deadline_raises_one_alert(
    make_runner: RunnerFactory, receiver: Receiver, name: Callable[[str], str]
) -> None:
    wf_name = name("late")
    on_time = name("on_time")

    @workflow(name=wf_name, deadline=0.3)
    class Late:
        @task
        def slow(context: Context) -> None:
            time.sleep(1.5)

    @workflow(name=on_time, deadline=30)
    class OnTime:
        @task
        def quick(context: Context) -> None:
            pass

    runner = make_runner()
    runner.add_alert_channel("deadlines", receiver.url, rules="run_deadline")
    seen: list[Alert] = []
    runner.on_alert(seen.append)
    assert runner.execute(on_time, timeout=10).status == "completed"
    result = runner.execute(wf_name, timeout=20)
    assert result.status == "completed"  # a deadline alerts; it never stops the run
    receiver.wait_for(1, "run_deadline")
    time.sleep(1.0)
    late = receiver.of_rule("run_deadline")
    assert len(late) == 1, late
    assert late[0].payload["execution_id"] == result.execution_id
    assert late[0].payload["status"] == "running"
    assert [a.rule for a in seen] == ["run_deadline"]


def test_workflow_deadline_must_be_positive(name: Callable[[str], str]) -> None:
    from cloacina.errors import WorkflowDefinitionError

    with pytest.raises(WorkflowDefinitionError, match="invalid deadline"):

        @workflow(name=name("bad"), deadline=0)
        class Bad:
            @task
            def a(context: Context) -> None:
                pass


def test_a_lost_worker_and_its_recovered_task_are_alerted(
    make_runner: RunnerFactory,
    receiver: Receiver,
    name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker whose heartbeats stop (as if it hung) is reported lost once, and its task,
    taken back by the other worker, is reported recovered."""
    started = threading.Event()
    release = threading.Event()
    wf_name = name("lost")

    @workflow(name=wf_name)
    class Lost:
        @task
        def long(context: Context) -> None:
            started.set()
            release.wait(5)

    victim = make_runner(stale_claim_threshold=0.5)
    victim.add_alert_channel("workers", receiver.url, rules=["worker_lost", "task_recovered"])
    eid = victim.schedule_workflow(wf_name)
    assert started.wait(10)

    def silent(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("heartbeat lost (simulated)")

    monkeypatch.setattr(victim.store, "worker_heartbeat", silent)
    other = make_runner(stale_claim_threshold=0.5)
    seen: list[Alert] = []
    other.on_alert(seen.append)
    receiver.wait_for(1, "worker_lost")
    receiver.wait_for(1, "task_recovered")
    release.set()
    assert other.wait(eid, timeout=20).status == "completed"
    time.sleep(1.0)
    (lost,) = receiver.of_rule("worker_lost")
    assert lost.payload["worker_id"] == victim.worker_id
    # The silent worker may claim the task again (its engine runs on) and lose it again:
    # one alert per recovery, each once.
    recovered = receiver.of_rule("task_recovered")
    assert [r.payload["recovery"] for r in recovered] == list(range(1, len(recovered) + 1))
    assert recovered[0].payload["execution_id"] == eid
    assert recovered[0].payload["task_id"] == "long"
    assert recovered[0].payload["outcome"] == "requeued"
    assert sorted(a.rule for a in seen) == ["task_recovered"] * len(recovered) + ["worker_lost"]
    workers = {w.id: w.status for w in other.store.list_workers()}
    assert workers[victim.worker_id] == "lost"


def test_channels_filter_by_rule_and_workflow(
    make_runner: RunnerFactory, receiver: Receiver, name: Callable[[str], str]
) -> None:
    runner = make_runner()
    mine, theirs = name("mine"), name("theirs")
    failing_workflow(mine)
    failing_workflow(theirs)
    runner.add_alert_channel("only-mine", receiver.url, rules=["run_failed"], workflow=mine)
    runner.add_alert_channel("deadlines-only", receiver.url, rules=["run_deadline"])
    runner.add_alert_channel("disabled", receiver.url, enabled=False)
    runner.execute(theirs, timeout=20)
    runner.execute(mine, timeout=20)
    receiver.wait_for(1)
    time.sleep(0.5)
    assert [r.payload["workflow"] for r in receiver.got] == [mine]
    assert {a.channel for a in runner.list_alerts()} == {"only-mine"}


def test_no_channel_no_outbox_rows_but_callbacks_still_run(
    make_runner: RunnerFactory, name: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    runner = make_runner()
    seen: list[Alert] = []

    def broken(alert: Alert) -> None:
        raise RuntimeError("a callback that fails")

    runner.on_alert(broken)  # logged, never raised, and the next callback still runs
    runner.on_alert(seen.append)
    with caplog.at_level(logging.ERROR, logger="cloacina.alerts"):
        result = runner.execute(failing_workflow(name("quiet")), timeout=20)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert [a.execution_id for a in seen] == [result.execution_id]
    assert "alert callback" in caplog.text and "a callback that fails" in caplog.text
    assert runner.list_alerts() == []


def test_channel_management_never_shows_the_secret(
    make_runner: RunnerFactory, receiver: Receiver
) -> None:
    runner = make_runner(execute_tasks=False)
    made = runner.add_alert_channel(
        "ops", "https://user:hunter2@hooks.example/x", secret="s" * 20, workflow="etl"
    )
    assert made.secret == "s" * 20
    assert "hunter2" not in made.url and "ssss" not in repr(made)
    (listed,) = runner.list_alert_channels()
    assert listed.secret is None and listed.workflow == "etl" and "hunter2" not in listed.url
    assert runner.get_alert_channel(made.id).name == "ops"
    with pytest.raises(ConflictError, match="exists already"):
        runner.add_alert_channel("ops", receiver.url)
    with pytest.raises(RequestError, match="unknown alert rule 'nope'"):
        runner.add_alert_channel("x", receiver.url, rules=["nope"])
    with pytest.raises(RequestError, match="invalid webhook URL"):
        runner.add_alert_channel("x", "ftp://example")
    with pytest.raises(RequestError, match="at least 16"):
        runner.add_alert_channel("x", receiver.url, secret="short")
    runner.remove_alert_channel("ops")
    assert runner.list_alert_channels() == []
    with pytest.raises(NotFoundError, match="no alert channel 'ops'"):
        runner.remove_alert_channel("ops")


def test_a_channel_test_is_delivered_at_once_to_that_channel_alone(
    make_runner: RunnerFactory, receiver: Receiver
) -> None:
    runner = make_runner(execute_tasks=False)  # a client: it delivers its own test
    channel = runner.add_alert_channel("ops", receiver.url)
    runner.add_alert_channel("other", receiver.url + "/other")
    result = runner.test_alert_channel("ops")
    assert result.attempted and result.delivered and result.status_code == 200
    (hit,) = receiver.got
    assert hit.payload["rule"] == "test" and hit.payload["channel"] == "ops"
    assert hit.headers["X-Cloacina-Alert-Id"] == result.alert_id
    assert channel.secret is not None
    assert verify_signature(channel.secret, hit.body, hit.headers["X-Cloacina-Signature"])

    receiver.codes = [500]
    failed = runner.test_alert_channel("ops")
    assert failed.attempted and not failed.delivered and failed.status_code == 500


def test_a_runner_shut_down_right_after_a_failure_still_sends_its_alert(
    make_runner: RunnerFactory, receiver: Receiver, name: Callable[[str], str]
) -> None:
    runner = make_runner(poll_interval=0.5)  # its outbox poll would come too late
    runner.add_alert_channel("ops", receiver.url)
    seen: list[Alert] = []
    runner.on_alert(seen.append)
    result = runner.execute(failing_workflow(name("last")), timeout=20)
    runner.shutdown()
    assert [r.payload["execution_id"] for r in receiver.got] == [result.execution_id]
    assert [a.execution_id for a in seen] == [result.execution_id]


def test_retention_prunes_delivered_alerts_but_keeps_pending_ones(
    make_runner: RunnerFactory, receiver: Receiver, name: Callable[[str], str]
) -> None:
    receiver.codes = [200, 500]  # the first channel's alert goes through, the second's waits
    runner = make_runner(retention=0.3, alert_retry_delay=3600)
    runner.add_alert_channel("a", receiver.url)
    runner.execute(failing_workflow(name("pruned")), timeout=20)
    receiver.wait_for(1)
    runner.add_alert_channel("b", receiver.url, rules=["run_failed"])
    runner.remove_alert_channel("a")
    runner.add_alert_channel("c", receiver.url)
    runner.execute(failing_workflow(name("kept")), timeout=20)
    receiver.wait_for(3)  # the second run's alert to b (500: pending) and to c (200)
    deadline = time.monotonic() + 15
    # Until the delivered alerts are pruned and c's, received, is recorded as delivered
    # (the receiver sees the POST before the outbox row says so) and pruned too.
    while len(alerts := runner.list_alerts()) != 1 or alerts[0].status == "delivered":
        assert time.monotonic() < deadline, "delivered alerts were never pruned"
        time.sleep(0.1)
    (left,) = runner.list_alerts()
    assert left.status == "pending" and left.attempts == 1


def test_a_claim_whose_holder_died_is_taken_over_after_its_lease(
    make_runner: RunnerFactory,
) -> None:
    """The outbox's claims (store level): a claimed alert is nobody else's until its lease
    ends; then another deliverer takes it (the next attempt), and the first holder's late
    report no longer moves it."""
    from cloacina.engine.alerts import test_alert

    runner = make_runner(execute_tasks=False)
    store = runner.store
    channel = runner.add_alert_channel("ops", "http://127.0.0.1:9/never")
    alert = test_alert("public", "ops", time.time())
    outbox_id = store.enqueue_channel_alert(channel.id, alert.outbox_item(), time.time())
    assert outbox_id is not None

    (first,) = store.claim_alerts("w1", time.time(), lease=0.3)
    assert first.attempt == 1 and first.url.endswith("/never")
    assert store.claim_alerts("w2", time.time(), lease=0.3) == []
    assert not store.alerts_due(time.time())
    time.sleep(0.4)
    assert store.alerts_due(time.time())
    (second,) = store.claim_alerts("w2", time.time(), lease=30)
    assert second.id == first.id and second.attempt == 2
    late = store.record_alert_attempt(
        first,
        "w1",
        status="delivered",
        now=time.time(),
        next_attempt_at=time.time(),
        status_code=200,
        error=None,
        duration=0.1,
    )
    assert late is False  # fenced: w2 holds it now
    assert store.record_alert_attempt(
        second,
        "w2",
        status="delivered",
        now=time.time(),
        next_attempt_at=time.time(),
        status_code=200,
        error=None,
        duration=0.1,
    )
    (queued,) = runner.list_alerts()
    assert queued.status == "delivered" and queued.attempts == 2
    assert [d.attempt for d in runner.list_alert_deliveries()] == [2, 1]  # both logged


def test_a_password_in_the_url_is_sent_as_basic_auth_and_never_shown(
    make_runner: RunnerFactory, receiver: Receiver
) -> None:
    import base64

    runner = make_runner(execute_tasks=False)
    url = receiver.url.replace("http://", "http://hook:p%40ss-word@")
    runner.add_alert_channel("authed", url)
    result = runner.test_alert_channel("authed")
    assert result.delivered, result
    (hit,) = receiver.got
    assert hit.headers["Authorization"] == "Basic " + base64.b64encode(b"hook:p@ss-word").decode()
    (listed,) = runner.list_alert_channels()
    assert "p%40ss-word" not in listed.url and "***" in listed.url
