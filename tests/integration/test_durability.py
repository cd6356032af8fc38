"""Durability (DESIGN.md §4, "Durability" and "Crash recovery"): state lives in the file."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloacina import Context, DefaultRunner, TaskStatus, current_task, task, workflow
from cloacina.store import Store, open_store

pytestmark = pytest.mark.timeout(60)

RunnerFactory = Callable[..., DefaultRunner]


@pytest.fixture
def raw_store(db_url: str) -> Iterator[Callable[[], Store]]:
    """Open the test database without a runner (no engine: nothing gets claimed)."""
    stores: list[Store] = []

    def open_() -> Store:
        store = open_store(db_url)
        stores.append(store)
        return store

    yield open_
    for store in stores:
        store.close()


def test_second_runner_sees_first_runners_executions(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    wf_name = name("visible")

    @workflow(name=wf_name)
    class Visible:
        @task
        def a(context: Context) -> None:
            context.insert("a", 1)

        @task(dependencies=[a])
        def b(context: Context) -> None:
            raise RuntimeError("b is broken")

    first = make_runner()
    done = first.execute(wf_name, {"in": True})
    assert done.status == "failed"
    second = make_runner()  # opened while the first is still open
    seen = second.get_execution(done.execution_id)
    first.shutdown()
    third = make_runner()  # opened after the first shut down
    seen_later = third.get_execution(done.execution_id)

    for view in (seen, seen_later):
        assert view == done
        assert view.status == "failed"
        assert view.final_context == {}  # the merge of the leaf outputs: b, which failed
        assert view.tasks["a"].status == TaskStatus.COMPLETED
        assert view.tasks["b"].error == "RuntimeError: b is broken"
        assert view.error is not None and "'b'" in view.error
    assert [r.execution_id for r in third.list_executions(workflow_name=wf_name)] == [
        done.execution_id
    ]
    assert "execution_failed" in [e.event for e in third.store.get_events(done.execution_id)]


def test_graceful_shutdown_finishes_running_task_and_leaves_rest_queued(
    make_runner: RunnerFactory,
    name: Callable[[str], str],
    raw_store: Callable[[], Store],
) -> None:
    started = threading.Event()
    calls: list[str] = []
    wf_name = name("graceful")

    @workflow(name=wf_name)
    class Graceful:
        @task
        def a(context: Context) -> None:
            calls.append("a")
            started.set()
            time.sleep(0.3)
            context.insert("a", True)

        @task(dependencies=[a])
        def b(context: Context) -> None:
            calls.append("b")
            context.insert("b", True)

    first = make_runner()
    eid = first.schedule_workflow(wf_name)
    assert started.wait(10)
    first.shutdown(wait=True)  # a finishes and is recorded; b must not start

    store = raw_store()
    row = store.get_execution(eid)
    assert row is not None and row.status == "running"
    tasks = {t.task_id: t for t in store.get_tasks(eid)}
    assert tasks["a"].status == "completed"
    assert tasks["b"].status == "ready"
    assert calls == ["a"]

    second = make_runner()
    result = second.wait(eid, timeout=20)
    assert result.status == "completed"
    assert result.final_context == {"a": True, "b": True}
    assert calls == ["a", "b"]
    assert result.tasks["a"].recoveries == 0


def test_abrupt_shutdown_task_is_recovered_by_next_runner(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    """shutdown(wait=False) does not wait for a running task: the task is handed back to the
    queue at once (not a retry, not a recovery) and a new runner runs it again."""
    first_call_started = threading.Event()
    release = threading.Event()
    calls: list[tuple[str, int, int]] = []
    wf_name = name("abrupt")

    @workflow(name=wf_name)
    class Abrupt:
        @task
        def a(context: Context) -> None:
            info = current_task()
            assert info is not None
            calls.append(("a", info.attempt, info.recovery))
            if len(calls) == 1:
                first_call_started.set()
                release.wait(10)  # the abandoned body; its late result must be ignored
                context.insert("stale", True)
            context.set("a_recovery", info.recovery)

        @task(dependencies=[a])
        def b(context: Context) -> None:
            calls.append(("b", 1, 0))
            context.insert("b", True)

    first = make_runner()
    eid = first.schedule_workflow(wf_name)
    assert first_call_started.wait(10)
    started = time.monotonic()
    first.shutdown(wait=False)
    assert time.monotonic() - started < 2, "shutdown(wait=False) must not wait for the task"

    second = make_runner()
    release.set()  # the abandoned body returns into a closed runner
    result = second.wait(eid, timeout=20)

    assert result.status == "completed"
    assert result.tasks["a"].recoveries == 0
    assert result.tasks["a"].attempts == 1  # handing back is not a retry
    assert result.final_context == {"a_recovery": 0, "b": True}
    assert [c[0] for c in calls] == ["a", "a", "b"]
    assert calls[1] == ("a", 1, 0)
    events = [e.event for e in second.store.get_events(eid) if e.task_id == "a"]
    assert events.count("task_handed_back") == 1
    assert events.count("task_recovered") == 0
    assert events.count("task_completed") == 1


# ---- kill -9 ----------------------------------------------------------------------------------

WORKFLOW_MODULE = """
from __future__ import annotations

import os
import time
from pathlib import Path

from cloacina import Context, current_task, task, workflow

NAME = {name!r}
LOG = Path(__file__).with_name("task.log")


def _log(task_id: str) -> None:
    info = current_task()
    assert info is not None
    with LOG.open("a") as f:
        f.write(f"{{task_id}} {{info.attempt}} {{info.recovery}} {{os.getpid()}}\\n")
        f.flush()
        os.fsync(f.fileno())


def _runs(task_id: str) -> int:
    if not LOG.exists():
        return 0
    return sum(1 for line in LOG.read_text().splitlines() if line.split()[0] == task_id)


@workflow(name=NAME)
class KillChain:
    @task
    def first(context: Context) -> None:
        _log("first")
        context.insert("first_pid", os.getpid())

    @task(dependencies=[first])
    def middle(context: Context) -> None:
        earlier = _runs("middle")
        _log("middle")
        if earlier == 0:
            time.sleep(30)  # killed here on the first run
        context.insert("middle_pid", os.getpid())

    @task(dependencies=[middle])
    def last(context: Context) -> None:
        _log("last")
        context.insert("last_pid", os.getpid())
"""

CHILD_SCRIPT = """
import sys

sys.path.insert(0, sys.argv[1])
module = __import__(sys.argv[2])

from cloacina import DefaultRunner

runner = DefaultRunner(
    sys.argv[3], poll_interval=0.05, heartbeat_interval=0.1, stale_claim_threshold=0.5
)
execution_id = runner.schedule_workflow(module.NAME, {"input": 1})
print(execution_id, flush=True)
runner.wait(execution_id)
print("finished", flush=True)
"""


def _read_log(path: Path) -> list[tuple[str, int, int, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        tid, attempt, recovery, pid = line.split()
        out.append((tid, int(attempt), int(recovery), int(pid)))
    return out


@pytest.fixture
def killed_run(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, int, Path]]:
    """Start the chain in a child process, SIGKILL it while ``middle`` sleeps, and import the
    workflow module here. Yields (execution id, child pid, log path)."""
    module_name = f"killwf_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{module_name}.py").write_text(
        WORKFLOW_MODULE.format(name=f"kill_chain_{uuid.uuid4().hex[:10]}")
    )
    child = tmp_path / "child.py"
    child.write_text(CHILD_SCRIPT)
    log = tmp_path / "task.log"

    proc = subprocess.Popen(
        [sys.executable, str(child), str(tmp_path), module_name, db_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        execution_id = proc.stdout.readline().strip()
        if not execution_id:
            proc.wait(5)
            pytest.fail(f"child failed to start: {proc.stderr.read() if proc.stderr else ''}")
        deadline = time.monotonic() + 20
        while not any(entry[0] == "middle" for entry in _read_log(log)):
            assert proc.poll() is None, "the child exited before the middle task started"
            assert time.monotonic() < deadline, "the middle task never started"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module(module_name)
    try:
        yield execution_id, proc.pid, log
    finally:
        sys.modules.pop(module_name, None)


def test_kill_9_mid_task_is_recovered(
    killed_run: tuple[str, int, Path], make_runner: RunnerFactory
) -> None:
    execution_id, child_pid, log = killed_run
    assert [e[0] for e in _read_log(log)] == ["first", "middle"]

    runner = make_runner(stale_claim_threshold=0.5)
    result = runner.wait(execution_id, timeout=20)

    me = os.getpid()
    assert result.status == "completed", result.error
    entries = _read_log(log)
    assert [e[0] for e in entries] == ["first", "middle", "middle", "last"]
    assert entries[0] == ("first", 1, 0, child_pid)  # ran exactly once, not again
    assert entries[1] == ("middle", 1, 0, child_pid)  # interrupted by the kill
    assert entries[2] == ("middle", 1, 1, me)  # rerun here, told it is a recovery
    assert entries[3] == ("last", 1, 0, me)

    assert result.tasks["first"].recoveries == 0
    assert result.tasks["middle"].recoveries == 1
    assert result.tasks["middle"].attempts == 1
    assert result.tasks["last"].recoveries == 0
    assert all(t.status == TaskStatus.COMPLETED for t in result.tasks.values())
    assert result.final_context == {
        "input": 1,
        "first_pid": child_pid,
        "middle_pid": me,
        "last_pid": me,
    }
    events = [(e.task_id, e.event) for e in runner.store.get_events(execution_id)]
    assert events.count(("middle", "task_recovered")) == 1
    assert events.count(("middle", "task_started")) == 2
    assert events.count(("first", "task_started")) == 1
    assert events.count(("middle", "task_completed")) == 1
    assert events[-1] == (None, "execution_completed")


def test_kill_9_recovery_limit_fails_task_clearly(
    killed_run: tuple[str, int, Path], make_runner: RunnerFactory
) -> None:
    execution_id, _child_pid, log = killed_run

    runner = make_runner(stale_claim_threshold=0.5, max_recoveries=0)
    result = runner.wait(execution_id, timeout=20)

    assert result.status == "failed"
    middle = result.tasks["middle"]
    assert middle.status == TaskStatus.FAILED
    assert middle.error is not None
    assert "abandoned" in middle.error and "max_recoveries" in middle.error
    assert result.tasks["last"].status == TaskStatus.SKIPPED
    assert "middle" in (result.error or "")
    assert [e[0] for e in _read_log(log)] == ["first", "middle"]  # nothing ran again
    events = [(e.task_id, e.event) for e in runner.store.get_events(execution_id)]
    assert ("middle", "task_abandoned") in events


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_long_task_in_live_runner_is_not_taken_back(
    make_runner: RunnerFactory, name: Callable[[str], str], kind: str
) -> None:
    """Heartbeats keep a task that runs past stale_claim_threshold owned by its live runner."""
    calls: list[int] = []
    wf_name = name(f"long_{kind}")

    if kind == "sync":

        def body(context: Context) -> None:
            calls.append(1)
            time.sleep(1.5)
            context.insert("done", True)

    else:

        async def body(context: Context) -> None:  # type: ignore[misc]
            calls.append(1)
            await asyncio.sleep(1.5)
            context.insert("done", True)

    workflow(name=wf_name)(type("Long", (), {"long": task(id="long")(body)}))
    runner = make_runner(stale_claim_threshold=0.5)
    other = make_runner(stale_claim_threshold=0.5)  # a second runner also looks for stale work

    result = runner.execute(wf_name, timeout=20)

    assert result.status == "completed"
    assert calls == [1]
    assert result.tasks["long"].recoveries == 0
    assert "task_recovered" not in [e.event for e in other.store.get_events(result.execution_id)]


def test_pause_is_stored_and_resumed_by_another_runner(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    started = threading.Event()
    calls: list[str] = []
    wf_name = name("pause_durable")

    @workflow(name=wf_name)
    class PauseDurable:
        @task
        def a(context: Context) -> None:
            calls.append("a")
            started.set()
            time.sleep(0.2)

        @task(dependencies=[a])
        def b(context: Context) -> None:
            calls.append("b")
            context.insert("b", True)

    first = make_runner()
    eid = first.schedule_workflow(wf_name)
    assert started.wait(10)
    first.pause(eid)
    first.shutdown(wait=True)

    second = make_runner()
    time.sleep(0.3)  # a paused run stays paused in a new runner
    assert second.get_execution(eid).status == "paused"
    assert calls == ["a"]
    second.resume(eid)
    result = second.wait(eid, timeout=10)
    assert result.status == "completed"
    assert calls == ["a", "b"]


def test_lost_claim_cannot_complete_the_task(
    make_runner: RunnerFactory, name: Callable[[str], str]
) -> None:
    """A runner whose heartbeats lag (so another runner took its task back) must be fenced
    out by the claim token when its body finally returns (DESIGN.md §4, "Durability")."""
    first_started = threading.Event()
    release = threading.Event()
    calls: list[tuple[str, int]] = []
    wf_name = name("fenced")

    @workflow(name=wf_name)
    class Fenced:
        @task
        def work(context: Context) -> None:
            info = current_task()
            assert info is not None
            calls.append(("work", info.recovery))
            if info.recovery == 0:
                first_started.set()
                release.wait(10)
            context.insert("done_by_recovery", info.recovery)

        @task(dependencies=[work])
        def after(context: Context) -> None:
            calls.append(("after", 0))
            context.insert("after", True)

    # The slow runner heartbeats every 2s; the other one calls a claim stale after 0.5s.
    slow = make_runner(heartbeat_interval=2.0, stale_claim_threshold=10.0)
    eid = slow.schedule_workflow(wf_name)
    assert first_started.wait(10)
    fast = make_runner(stale_claim_threshold=0.5)
    result = fast.wait(eid, timeout=20)
    assert result.status == "completed"

    release.set()  # the slow runner's body returns; its completion must be refused
    time.sleep(0.5)

    final = fast.get_execution(eid)
    assert final.status == "completed"
    assert final.final_context == {"done_by_recovery": 1, "after": True}
    assert final.tasks["work"].recoveries == 1
    assert calls == [("work", 0), ("work", 1), ("after", 0)]
    events = [(e.task_id, e.event) for e in fast.store.get_events(eid)]
    assert events.count(("work", "task_completed")) == 1
    assert events.count(("after", "task_started")) == 1
    assert events.count(("work", "task_recovered")) == 1
