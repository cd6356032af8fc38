"""Task logs of in-process tasks on SQLite and PostgreSQL: each attempt's prints and logging
records, kept apart between bodies that run at once (threads and the async task loop),
bounded with a marker, one log per attempt, followed while the task runs, and the errors
for what does not exist."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable

import pytest

from cloacina import Context, DefaultRunner, RetryPolicy, task, workflow
from cloacina.engine.capture import RoutingStream
from cloacina.errors import AttemptNotFoundError, ExecutionNotFoundError, TaskNotFoundError

pytestmark = pytest.mark.timeout(60)

RunnerFactory = Callable[..., DefaultRunner]
Name = Callable[[str], str]


def test_two_def_tasks_printing_at_once_get_only_their_own_lines(
    runner: DefaultRunner, name: Name
) -> None:
    both = threading.Barrier(2, timeout=10)
    wf_name = name("logs_threads")

    def chatter(who: str) -> None:
        both.wait()  # both bodies run at the same time
        for i in range(200):
            print(f"{who} out {i}")
            if i % 20 == 0:
                print(f"{who} err {i}", file=sys.stderr)
            if i % 10 == 0:
                time.sleep(0.001)  # let the other thread in

    @workflow(name=wf_name)
    class Wf:
        @task()
        def left(context: Context) -> None:
            chatter("left")

        @task()
        def right(context: Context) -> None:
            chatter("right")

    result = runner.execute(wf_name, timeout=30)
    assert result.status == "completed", result.error
    for who in ("left", "right"):
        text = runner.get_task_logs(result.execution_id, who)
        lines = text.splitlines()
        assert all(line.startswith(f"{who} ") for line in lines), who
        assert [ln for ln in lines if " out " in ln] == [f"{who} out {i}" for i in range(200)]
        assert [ln for ln in lines if " err " in ln] == [
            f"{who} err {i}" for i in range(0, 200, 20)
        ]


def test_async_tasks_on_the_task_loop_are_kept_apart(runner: DefaultRunner, name: Name) -> None:
    wf_name = name("logs_async")

    async def chatter(who: str) -> None:
        for i in range(50):
            print(f"{who} {i}")
            await asyncio.sleep(0.001)  # the other body runs meanwhile, on the same loop

    @workflow(name=wf_name)
    class Wf:
        @task()
        async def ping(context: Context) -> None:
            await chatter("ping")

        @task()
        async def pong(context: Context) -> None:
            await chatter("pong")

        @task()
        def plain(context: Context) -> None:
            print("a def task beside them")

    result = runner.execute(wf_name, timeout=30)
    assert result.status == "completed", result.error
    eid = result.execution_id
    for who in ("ping", "pong"):
        assert runner.get_task_logs(eid, who) == "".join(f"{who} {i}\n" for i in range(50))
    assert runner.get_task_logs(eid, "plain") == "a def task beside them\n"


def test_logging_records_are_part_of_the_log(runner: DefaultRunner, name: Name) -> None:
    wf_name = name("logs_logging")
    logger = logging.getLogger(f"tests.{wf_name}")
    logger.setLevel(logging.INFO)

    @workflow(name=wf_name)
    class Wf:
        @task()
        def noisy(context: Context) -> None:
            print("before")
            logger.info("rows=%d", 42)
            logger.debug("not at this level")
            print("after")

        @task()
        def other(context: Context) -> None:
            logger.warning("from the other task")

    result = runner.execute(wf_name, timeout=30)
    assert result.status == "completed", result.error
    lines = runner.get_task_logs(result.execution_id, "noisy").splitlines()
    assert lines[0] == "before" and lines[2] == "after" and len(lines) == 3
    assert lines[1].endswith(f" INFO tests.{wf_name}: rows=42")
    other = runner.get_task_logs(result.execution_id, "other")
    assert other.endswith(f"WARNING tests.{wf_name}: from the other task\n")
    assert "rows=42" not in other
    chunks = [c for c in runner.follow_execution_logs(result.execution_id)]
    assert [c.stream for c in chunks if c.task_id == "noisy"] == ["stdout", "log", "stdout"]


def test_the_bound_cuts_an_attempt_with_a_marker(make_runner: RunnerFactory, name: Name) -> None:
    runner = make_runner(max_log_bytes=100)
    wf_name = name("logs_bound")

    @workflow(name=wf_name)
    class Wf:
        @task()
        def flood(context: Context) -> None:
            for i in range(100):
                print(f"line {i:04d}")  # 10 bytes each: 1,000 in all

    result = runner.execute(wf_name, timeout=30)
    assert result.status == "completed", result.error
    text = runner.get_task_logs(result.execution_id, "flood")
    lines = text.splitlines()
    assert lines[:10] == [f"line {i:04d}" for i in range(10)]
    assert lines[10:] == [
        "[cloacina: 900 more bytes of output were dropped: an attempt keeps its first 100 "
        "bytes (setting max_log_bytes, env CLOACINA_MAX_LOG_BYTES)]"
    ]


def test_retries_keep_one_log_per_attempt_and_errors_name_what_is_missing(
    runner: DefaultRunner, name: Name
) -> None:
    wf_name = name("logs_retry")

    @workflow(name=wf_name)
    class Wf:
        @task(retry=RetryPolicy(max_attempts=3, initial_delay=0.01, jitter=False))
        def flaky(context: Context) -> None:
            from cloacina import current_task

            info = current_task()
            assert info is not None
            print(f"attempt {info.attempt} starts")
            if info.attempt < 3:
                raise ConnectionError("try again")
            print("it worked")

        @task(dependencies=[flaky])
        def silent(context: Context) -> None:
            pass

    result = runner.execute(wf_name, timeout=30)
    assert result.status == "completed", result.error
    eid = result.execution_id
    assert runner.get_task_logs(eid, "flaky", 1) == "attempt 1 starts\n"
    assert runner.get_task_logs(eid, "flaky", 2) == "attempt 2 starts\n"
    assert runner.get_task_logs(eid, "flaky", 3) == "attempt 3 starts\nit worked\n"
    assert runner.get_task_logs(eid, "flaky") == "attempt 3 starts\nit worked\n"  # the latest
    assert runner.get_task_logs(eid, "silent") == ""
    # A body that printed nothing stored nothing.
    assert {(c.task_id, c.attempt) for c in runner.follow_execution_logs(eid)} == {
        ("flaky", 1),
        ("flaky", 2),
        ("flaky", 3),
    }
    assert [(t.task_id, t.attempt, t.text) for t in runner.get_execution_logs(eid)] == [
        ("flaky", 3, "attempt 3 starts\nit worked\n"),
        ("silent", 1, ""),
    ]

    with pytest.raises(AttemptNotFoundError, match=r"no attempt 4: its attempts are 1 to 3"):
        runner.get_task_logs(eid, "flaky", 4)
    with pytest.raises(AttemptNotFoundError):
        runner.get_task_logs(eid, "flaky", 0)
    with pytest.raises(TaskNotFoundError, match=r"no task 'flakey'; did you mean 'flaky'\?"):
        runner.get_task_logs(eid, "flakey")
    with pytest.raises(ExecutionNotFoundError):
        runner.get_task_logs("00000000-0000-0000-0000-000000000000", "flaky")
    with pytest.raises(TaskNotFoundError):
        runner.follow_task_logs(eid, "nope")  # raised at once, not at the first piece
    with pytest.raises(ExecutionNotFoundError):
        runner.follow_execution_logs("00000000-0000-0000-0000-000000000000")


def test_follow_sees_lines_while_the_task_still_runs(runner: DefaultRunner, name: Name) -> None:
    wf_name = name("logs_follow")
    go_on = threading.Event()

    @workflow(name=wf_name)
    class Wf:
        @task()
        def first(context: Context) -> None:
            pass

        @task(dependencies=[first])
        def worker(context: Context) -> None:
            print("started")
            if not go_on.wait(20):
                raise TimeoutError("the test never let the task go on")
            print("finished")

    eid = runner.schedule_workflow(wf_name)
    pieces = runner.follow_task_logs(eid, "worker", poll_interval=0.05)  # before it started
    assert next(pieces) == "started\n"
    assert runner.get_execution(eid).tasks["worker"].status == "running"
    go_on.set()
    assert "".join(pieces) == "finished\n"  # and the follow ends with the attempt
    assert runner.wait(eid, timeout=30).status == "completed"
    # Following an attempt that has ended gives it whole, at once.
    assert list(runner.follow_task_logs(eid, "worker")) == ["started\nfinished\n"]


def test_follow_async_for_a_server(runner: DefaultRunner, name: Name) -> None:
    wf_name = name("logs_follow_async")
    go_on = threading.Event()

    @workflow(name=wf_name)
    class Wf:
        @task()
        async def slow(context: Context) -> None:
            print("one")
            while not go_on.is_set():
                await asyncio.sleep(0.01)
            print("two")

    eid = runner.schedule_workflow(wf_name)

    async def follow() -> list[str]:
        with pytest.raises(TaskNotFoundError):
            await runner.follow_task_logs_async(eid, "missing")
        seen: list[str] = []
        async for text in await runner.follow_task_logs_async(eid, "slow", poll_interval=0.05):
            seen.append(text)
            go_on.set()  # only once the first line came while it ran
        return seen

    assert "".join(asyncio.run(follow())) == "one\ntwo\n"
    assert runner.wait(eid, timeout=30).status == "completed"


def test_a_timed_out_body_keeps_what_it_printed_in_time(runner: DefaultRunner, name: Name) -> None:
    wf_name = name("logs_timeout")
    release = threading.Event()

    @workflow(name=wf_name)
    class Wf:
        @task(timeout=0.3)
        def stuck(context: Context) -> None:
            print("before the timeout")
            release.wait(5)
            print("after the timeout: ignored")

    result = runner.execute(wf_name, timeout=30)
    release.set()
    assert result.status == "failed"
    time.sleep(0.1)
    assert runner.get_task_logs(result.execution_id, "stuck") == "before the timeout\n"


def test_zero_bytes_captures_nothing_and_leaves_the_streams_alone(
    make_runner: RunnerFactory, name: Name
) -> None:
    runner = make_runner(max_log_bytes=0)
    wf_name = name("logs_off")

    @workflow(name=wf_name)
    class Wf:
        @task()
        def talk(context: Context) -> None:
            print("not kept")

    assert not isinstance(sys.stdout, RoutingStream)
    result = runner.execute(wf_name, timeout=30)
    assert result.status == "completed"
    assert runner.get_task_logs(result.execution_id, "talk") == ""
    assert not isinstance(sys.stdout, RoutingStream)


def test_streams_are_put_back_when_the_last_runner_stops(
    make_runner: RunnerFactory, name: Name
) -> None:
    before = sys.stdout
    first, second = make_runner(), make_runner()
    assert isinstance(sys.stdout, RoutingStream)
    first.shutdown()
    assert isinstance(sys.stdout, RoutingStream)  # the other still runs tasks
    second.shutdown()
    assert sys.stdout is before


def test_pruning_a_run_removes_its_logs(runner: DefaultRunner, name: Name) -> None:
    wf_name = name("logs_prune")

    @workflow(name=wf_name)
    class Wf:
        @task()
        def talk(context: Context) -> None:
            print("soon gone")

    old = runner.execute(wf_name, timeout=30).execution_id
    assert runner.get_task_logs(old, "talk") == "soon gone\n"
    time.sleep(0.05)
    assert runner.prune_executions(0.01) >= 1
    assert runner.store.read_run_logs(old) == []
    with pytest.raises(ExecutionNotFoundError):
        runner.get_task_logs(old, "talk")


def test_a_cancelled_run_keeps_what_its_running_task_printed(
    runner: DefaultRunner, name: Name
) -> None:
    wf_name = name("logs_cancel")
    printed = threading.Event()
    release = threading.Event()

    @workflow(name=wf_name)
    class Wf:
        @task()
        def busy(context: Context) -> None:
            print("working on it", flush=True)
            printed.set()
            release.wait(10)
            print("too late: the run was cancelled")

    eid = runner.schedule_workflow(wf_name)
    try:
        assert printed.wait(10)
        runner.cancel(eid)
        # Abandoned, not recorded: its output goes with the engine's next periodic write.
        deadline = time.monotonic() + 5
        while runner.get_task_logs(eid, "busy") == "" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runner.get_task_logs(eid, "busy") == "working on it\n"
    finally:
        release.set()
    time.sleep(0.1)
    assert runner.get_task_logs(eid, "busy") == "working on it\n"
