"""Retries (DESIGN.md §4, "Retries"): attempts, exhaustion, skip cascade, retry_on."""

from __future__ import annotations

from collections.abc import Callable

from cloacina import (
    Context,
    DefaultRunner,
    RetryPolicy,
    TaskError,
    TaskStatus,
    current_task,
    task,
    workflow,
)


def _attempt() -> int:
    info = current_task()
    assert info is not None, "current_task() must be set inside a running task"
    return info.attempt


def test_flaky_task_succeeds_on_third_attempt(
    runner: DefaultRunner,
    name: Callable[[str], str],
    fast_retry: RetryPolicy,
    events: Callable[..., list[str]],
) -> None:
    attempts_seen: list[int] = []
    wf_name = name("flaky")

    @workflow(name=wf_name)
    class Flaky:
        @task(retry=fast_retry)
        def flaky(context: Context) -> None:
            attempts_seen.append(_attempt())
            if len(attempts_seen) < 3:
                raise ConnectionError(f"transient failure #{len(attempts_seen)}")
            context.insert("ok", True)

        @task(dependencies=[flaky])
        def after(context: Context) -> None:
            context.insert("after", context["ok"])

    result = runner.execute(wf_name)

    assert result.status == "completed"
    assert result.tasks["flaky"].status == TaskStatus.COMPLETED
    assert result.tasks["flaky"].attempts == 3
    assert result.tasks["after"].attempts == 1
    assert attempts_seen == [1, 2, 3]
    assert result.final_context == {"ok": True, "after": True}
    assert events(runner, result.execution_id, "flaky") == [
        "task_started",
        "task_retry_scheduled",
        "task_started",
        "task_retry_scheduled",
        "task_started",
        "task_completed",
    ]


def test_async_task_attempt_numbers(
    runner: DefaultRunner, name: Callable[[str], str], fast_retry: RetryPolicy
) -> None:
    attempts_seen: list[int] = []
    wf_name = name("async_flaky")

    @workflow(name=wf_name)
    class AsyncFlaky:
        @task(retry=fast_retry)
        async def flaky(context: Context) -> None:
            attempts_seen.append(_attempt())
            if _attempt() < 2:
                raise RuntimeError("first try fails")
            context.insert("attempt", _attempt())

    result = runner.execute(wf_name)

    assert result.status == "completed"
    assert attempts_seen == [1, 2]
    assert result.tasks["flaky"].attempts == 2
    assert result.final_context == {"attempt": 2}


def test_exhausted_retries_fail_run_and_cascade_skips(
    runner: DefaultRunner,
    name: Callable[[str], str],
    fast_retry: RetryPolicy,
    events: Callable[..., list[str]],
) -> None:
    ran: list[str] = []
    wf_name = name("exhaust")

    @workflow(name=wf_name)
    class Exhaust:
        @task
        def start(context: Context) -> None:
            ran.append("start")

        @task(dependencies=[start], retry=fast_retry)
        def always_fails(context: Context) -> None:
            ran.append("always_fails")
            raise ValueError("the disk is on fire")

        @task(dependencies=[always_fails])
        def child(context: Context) -> None:
            ran.append("child")

        @task(dependencies=[child])
        def grandchild(context: Context) -> None:
            ran.append("grandchild")

        @task(dependencies=[start])
        def sibling(context: Context) -> None:
            ran.append("sibling")

    result = runner.execute(wf_name)

    assert result.status == "failed"
    failed = result.tasks["always_fails"]
    assert failed.status == TaskStatus.FAILED
    assert failed.attempts == 3
    assert failed.error is not None
    assert "the disk is on fire" in failed.error
    assert "ValueError" in failed.error
    assert failed.traceback is not None and "ValueError" in failed.traceback
    assert result.error is not None
    assert "always_fails" in result.error
    assert "the disk is on fire" in result.error

    assert result.tasks["child"].status == TaskStatus.SKIPPED
    assert result.tasks["grandchild"].status == TaskStatus.SKIPPED
    assert result.tasks["child"].skip_reason is not None
    assert "failed" in result.tasks["child"].skip_reason
    assert result.tasks["grandchild"].skip_reason is not None
    assert "skipped" in result.tasks["grandchild"].skip_reason
    assert result.tasks["sibling"].status == TaskStatus.COMPLETED
    assert result.tasks["start"].status == TaskStatus.COMPLETED

    assert ran.count("always_fails") == 3
    assert "child" not in ran and "grandchild" not in ran
    assert sorted(ran) == sorted(["start", "sibling", *["always_fails"] * 3])

    names = events(runner, result.execution_id)
    assert names.count("task_retry_scheduled") == 2
    assert names.count("task_failed") == 1
    assert names.count("task_skipped") == 2
    assert names[-1] == "execution_failed"


def test_non_retryable_task_error_fails_at_once(
    runner: DefaultRunner, name: Callable[[str], str], fast_retry: RetryPolicy
) -> None:
    calls: list[int] = []
    wf_name = name("fatal")

    @workflow(name=wf_name)
    class Fatal:
        @task(retry=fast_retry)
        def fatal(context: Context) -> None:
            calls.append(_attempt())
            raise TaskError("bad input, retrying will not help", retryable=False)

    result = runner.execute(wf_name)

    assert result.status == "failed"
    assert calls == [1]
    assert result.tasks["fatal"].attempts == 1
    assert result.tasks["fatal"].error == "bad input, retrying will not help"


def test_retryable_task_error_is_retried(
    runner: DefaultRunner, name: Callable[[str], str], fast_retry: RetryPolicy
) -> None:
    wf_name = name("task_error_retry")

    @workflow(name=wf_name)
    class TaskErrorRetry:
        @task(retry=fast_retry)
        def flaky(context: Context) -> None:
            raise TaskError(f"still broken on attempt {_attempt()}")

    result = runner.execute(wf_name)

    assert result.status == "failed"
    assert result.tasks["flaky"].attempts == 3
    assert result.tasks["flaky"].error == "still broken on attempt 3"


def test_default_task_has_no_retries(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    wf_name = name("no_retry")

    @workflow(name=wf_name)
    class NoRetry:
        @task
        def once(context: Context) -> None:
            raise RuntimeError("no second chance")

    result = runner.execute(wf_name)

    assert result.status == "failed"
    assert result.tasks["once"].attempts == 1


def test_retry_on_restricts_retried_exceptions(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    policy = RetryPolicy(
        max_attempts=3, initial_delay=0.01, jitter=False, retry_on=(ConnectionError,)
    )
    wf_name = name("retry_on")

    @workflow(name=wf_name)
    class RetryOn:
        @task(retry=policy)
        def retried(context: Context) -> None:
            if _attempt() < 3:
                raise ConnectionError("network blip")
            context.insert("retried", _attempt())

        @task(retry=policy)
        def not_retried(context: Context) -> None:
            raise KeyError("a bug, not a blip")

    result = runner.execute(wf_name)

    assert result.tasks["retried"].status == TaskStatus.COMPLETED
    assert result.tasks["retried"].attempts == 3
    assert result.tasks["not_retried"].status == TaskStatus.FAILED
    assert result.tasks["not_retried"].attempts == 1
    assert "KeyError" in (result.tasks["not_retried"].error or "")
    assert result.status == "failed"
    assert "not_retried" in (result.error or "")


def test_fixed_backoff_delay_is_respected(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    policy = RetryPolicy(max_attempts=2, backoff="fixed", initial_delay=0.3, jitter=False)
    wf_name = name("backoff")

    @workflow(name=wf_name)
    class Backoff:
        @task(retry=policy)
        def slow_retry(context: Context) -> None:
            if _attempt() == 1:
                raise RuntimeError("try again later")

    result = runner.execute(wf_name)

    assert result.status == "completed"
    stored = runner.store.get_events(result.execution_id)
    scheduled = [e for e in stored if e.event == "task_retry_scheduled"]
    restarted = [e for e in stored if e.event == "task_started" and e.attempt == 2]
    assert len(scheduled) == 1 and len(restarted) == 1
    gap = restarted[0].created_at - scheduled[0].created_at
    assert gap >= 0.29, f"retry started {gap:.3f}s after the failure; backoff is 0.3s"
    assert gap < 2.0
