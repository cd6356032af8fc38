"""Running one task body: build its input context, call it, turn the result into an outcome.

These functions run on a worker thread (``def`` tasks) or on the engine's event loop
(``async def`` tasks). They never touch the database: the engine records the outcome.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloacina.engine import capture
from cloacina.engine.capture import AttemptLog
from cloacina.errors import TaskError, TaskTimeoutError
from cloacina.model.context import Context, deep_merge_into, dumps_context
from cloacina.model.rules import DepCounts, Verdict
from cloacina.model.status import TaskStatus
from cloacina.model.task import Task
from cloacina.store.records import Claim
from cloacina.taskinfo import TaskInfo, reset_current, set_current

COMPLETED, FAILED, SKIPPED = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED


@dataclass(slots=True)
class Outcome:
    """What happened when a claimed task ran."""

    claim: Claim
    kind: TaskStatus  # completed | failed | skipped
    output_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    exc: BaseException | None = None
    skip_reason: str | None = None
    finished_at: float = 0.0


@dataclass(slots=True)
class Job:
    """Everything a worker needs to run one claimed task."""

    claim: Claim
    task: Task
    inputs: list[str]  # JSON of the dependencies' outputs in declared order (or the run input)
    info: TaskInfo
    body_started: float | None = None  # monotonic time the body began (for sync timeouts)
    origin: Any = None  # a PackageRef when the task runs in a package's processes
    #: The asyncio task running an ``async def`` body (to tell whether it blocks its loop).
    body_task: Any = None
    #: Where the body's prints and logging records go (None: not captured).
    log: AttemptLog | None = None


def build_context(inputs: list[str], task: Task | None = None) -> Context:
    """The task's input: the deep merge of its dependencies' outputs, in declared order
    (or the task's own ``merge_inputs`` of them, for a compatibility layer's semantics)."""
    ctx = Context()
    merge = None if task is None else task.merge_inputs
    if merge is not None:
        parts = [json.loads(text) for text in inputs]
        ctx._data = merge([p for p in parts if isinstance(p, dict)])
        return ctx
    if len(inputs) == 1:
        data = json.loads(inputs[0])
        ctx._data = data if isinstance(data, dict) else {}
        return ctx
    merged: dict[str, Any] = {}
    for text in inputs:
        part = json.loads(text)
        if isinstance(part, dict):
            deep_merge_into(merged, part)
    ctx._data = merged
    return ctx


def condition_skip(job: Job, ctx: Context) -> Outcome | None:
    """A ``skipped`` outcome when the task's context condition does not hold, else None."""
    rule = job.task.trigger_rule
    if not rule.has_condition() or job.info.map_index is not None:
        return None  # (a mapped task's condition is judged once, before its instances)
    c = job.claim
    deps = DepCounts(c.deps_total, 0, c.deps_failed, c.deps_skipped)
    if rule.evaluate(deps, ctx._data) is Verdict.SKIP:
        reason = f"trigger rule not met: {rule.describe()}"
        return Outcome(c, SKIPPED, skip_reason=reason, finished_at=time.time())
    return None


def _finish(job: Job, ctx: Context, result: Any) -> Outcome:
    if job.info.map_index is not None:  # an instance of a mapped task: its return value
        return instance_outcome(job, result.to_dict() if isinstance(result, Context) else result)
    if isinstance(result, dict):
        ctx.merge(result)
    elif result is not None and not isinstance(result, Context):
        err = TaskError(
            f"task {job.task.id!r} returned {type(result).__name__}; a task returns None or a "
            "dict of context updates",
            retryable=False,
        )
        return _failure(job, err)
    try:
        output = dumps_context(ctx._data)
    except TaskError as exc:  # pragma: no cover - dumps raises ContextSerializationError
        return _failure(job, exc)
    except Exception as exc:
        return _failure(job, exc, f"task {job.task.id!r} produced an unstorable context: {exc}")
    return Outcome(job.claim, COMPLETED, output_json=output, finished_at=time.time())


def instance_outcome(job: Job, value: Any) -> Outcome:
    """An instance of a mapped task returned ``value``: its output (any JSON value)."""
    try:
        output = dumps_context({"_": value})[5:-1]  # the value alone: '{"_":' ... '}'
    except Exception as exc:
        return _failure(
            job,
            exc,
            f"task {job.task.id!r} (instance {job.info.map_index}) returned a value that "
            f"cannot be stored as JSON: {exc}",
        )
    return Outcome(job.claim, COMPLETED, output_json=output, finished_at=time.time())


def _failure(job: Job, exc: BaseException, message: str | None = None) -> Outcome:
    if message is None:
        detail = str(exc) or type(exc).__name__
        message = detail if isinstance(exc, TaskError) else f"{type(exc).__name__}: {detail}"
    tb = "".join(traceback.format_exception(exc))
    return Outcome(job.claim, FAILED, error=message, traceback=tb, exc=exc, finished_at=time.time())


def run_sync(job: Job) -> Outcome:
    """Run a ``def`` task (on a worker thread)."""
    job.body_started = time.monotonic()
    try:
        ctx = build_context(job.inputs, job.task)
        skipped = condition_skip(job, ctx)
        if skipped is not None:
            return skipped
        token = set_current(job.info)
        log = job.log
        captured = None if log is None else capture.begin(log)
        try:
            result = job.task.func(ctx)
        finally:
            reset_current(token)
            if captured is not None:
                capture.end(captured)
        return _finish(job, ctx, result)
    except BaseException as exc:  # SystemExit in a task fails the task, not the runner
        return _failure(job, exc)


async def run_async(job: Job) -> Outcome:
    """Run an ``async def`` task on the engine's loop, cancelled at its timeout."""
    import asyncio  # here, not at the top: a package's worker process may never need it

    try:
        ctx = build_context(job.inputs, job.task)
        skipped = condition_skip(job, ctx)
        if skipped is not None:
            return skipped
        set_current(job.info)  # this coroutine runs in its own copy of the context
        if job.log is not None:
            capture.begin(job.log)  # so does the body's task, made from it below
        body = job.body_task = asyncio.ensure_future(_contained(job.task.func, ctx))
        if job.task.timeout is not None:
            try:
                result = await asyncio.wait_for(body, job.task.timeout)
            except TimeoutError:
                return timeout_outcome(job)
        else:
            result = await body
        return _finish(job, ctx, result)
    except asyncio.CancelledError as exc:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the engine cancelled us (run cancelled, shutdown): not a task failure
        return _failure(job, exc, f"task {job.task.id!r} raised CancelledError")
    except _Escaped as exc:  # SystemExit in a task fails the task, not the runner
        return _failure(job, exc.original)
    except BaseException as exc:
        return _failure(job, exc)


class _Escaped(Exception):
    """A SystemExit or KeyboardInterrupt raised by an async body, carried as an ordinary
    exception: asyncio lets those two out of a task's step, and out of the loop that runs
    it, which would stop every other async body with it."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


async def _contained(func: Callable[[Any], Any], ctx: Any) -> Any:
    """The body, with SystemExit and KeyboardInterrupt kept inside its task. The body's
    coroutine is made here, inside the task: a task cancelled before its first step (its run
    cancelled at once) then leaves no coroutine behind that was never awaited."""
    try:
        return await func(ctx)
    except (SystemExit, KeyboardInterrupt) as exc:
        raise _Escaped(exc) from exc


def machinery_failure(job: Job, exc: BaseException) -> Outcome:
    """The outcome of a task whose body could not be run or its result not be read (the
    engine's own machinery broke: a package that cannot be extracted, a process that cannot
    be spawned): a failure that follows the task's retry policy."""
    detail = str(exc) or type(exc).__name__
    return _failure(job, exc, f"task {job.task.id!r} could not run: {type(exc).__name__}: {detail}")


def timeout_outcome(job: Job, why: str = "") -> Outcome:
    err = TaskTimeoutError(
        f"task {job.task.id!r} timed out after {job.task.timeout:g}s (attempt {job.claim.attempt})"
        + why
    )
    return Outcome(
        job.claim, FAILED, error=str(err), exc=err, finished_at=time.time(), traceback=None
    )
