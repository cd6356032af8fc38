"""Dispatching claimed tasks and taking their outcomes back: the engine's task side.

``def`` bodies run on a pool of daemon threads, ``async def`` bodies on a loop of their own
(started on first use), never on the engine's loop, which waits on the database; packaged
bodies run in their package's processes, whose pipes the engine's loop serves. Outcomes of
threads and of the task loop come back through one inbox, and every body ends on one path:
an outcome is recorded, or the claim is released. Timeouts of ``def``
bodies, and of ``async def`` bodies that block their loop, are kept from the engine's loop.

Each body's prints and logging records are captured in an :class:`AttemptLog` (see
:mod:`cloacina.engine.capture`); when its claim ends, what is left of it is stored with the
engine's next write (the outcome's own transaction), and every ``LOG_FLUSH_INTERVAL`` what
running bodies have printed so far is stored in one transaction (nothing when none printed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from cloacina.engine.capture import AttemptLog
from cloacina.engine.executor import (
    Job,
    Outcome,
    machinery_failure,
    run_async,
    run_sync,
    timeout_outcome,
)
from cloacina.engine.liveness import storable_text
from cloacina.engine.threads import TaskThreads
from cloacina.registry.loader import PackageLoader
from cloacina.settings import Settings
from cloacina.store.base import Store
from cloacina.store.records import NewLogChunk

log = logging.getLogger("cloacina.engine")

#: How long past an async body's timeout the engine looks whether the body blocks its loop.
ASYNC_TIMEOUT_SLACK = 0.25
#: How often the output running bodies printed so far is stored (seconds).
LOG_FLUSH_INTERVAL = 1.0
BLOCKED_LOOP = (
    " (it blocked the event loop of async tasks: do not call blocking functions in an async"
    " def task)"
)


@dataclass
class RunningTask:
    job: Job
    timer: asyncio.TimerHandle | None = None
    #: The body on the task loop (``async def`` tasks), or the exchange with a package's
    #: process on the engine loop (packaged tasks); None for ``def`` tasks.
    future: concurrent.futures.Future[Outcome] | asyncio.Task[Outcome] | None = None
    #: Released: the engine no longer tracks it (read and written on the engine loop only).
    done: bool = False


class Dispatch:
    """The task side of :class:`~cloacina.engine.engine.Engine` (a mixin: the engine
    provides the attributes declared here)."""

    loader: PackageLoader | None
    store: Store
    settings: Settings
    free: int
    _loop: asyncio.AbstractEventLoop
    _pool: TaskThreads
    _running: dict[str, RunningTask]
    _outcomes: list[Outcome]
    _inbox: list[tuple[RunningTask, Outcome | None]]
    _inbox_lock: threading.Lock
    _now: Callable[[], float]
    _inbox_signalled: bool
    _task_loop: asyncio.AbstractEventLoop | None
    _task_thread: threading.Thread | None
    _request_cycle: Callable[..., None]
    #: Captured output waiting for the next write, in the order it was printed.
    _log_rows: list[NewLogChunk]
    _stopping: bool

    def _stop_task_loop(self) -> None:
        loop, thread = self._task_loop, self._task_thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def _tasks_loop(self) -> asyncio.AbstractEventLoop:
        """The loop of async and packaged task bodies (started on first use)."""
        if self._task_loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                while True:
                    try:
                        loop.run_forever()
                    except BaseException:
                        # asyncio lets SystemExit and KeyboardInterrupt out of a task's step
                        # (bodies are guarded; the loader's own code might not be): the
                        # other bodies on this loop must go on, so must the loop.
                        log.exception("the loop of async tasks was interrupted; it goes on")
                        continue
                    return  # stopped on purpose (shutdown)

            thread = threading.Thread(target=run, name="cloacina-async-tasks", daemon=True)
            thread.start()
            ready.wait()
            self._task_loop, self._task_thread = loop, thread
        return self._task_loop

    def _dispatch(self, job: Job) -> None:
        running = RunningTask(job)
        self._running[job.claim.claim_token] = running
        task = job.task
        limit = self.settings.max_log_bytes
        if limit:
            claim = job.claim
            job.log = AttemptLog(claim.execution_id, claim.task_id, claim.attempt, limit)
        try:
            if job.origin is not None and self.loader is not None:
                # A packaged body runs in a process of its own; only the pipe to it is served
                # here, on the engine's loop: a hop to the task loop and back cost a third
                # of a packaged chain3's time (measured), and a database wait only delays
                # reading the reply (or the kill at a timeout), never the body itself.
                package_task = self._loop.create_task(self.loader.run(job, job.origin))
                running.future = package_task
                package_task.add_done_callback(functools.partial(self._package_done, running))
            elif task.is_async:
                self._on_task_loop(running, run_async(job))
                if task.timeout is not None:
                    # Its own timeout fires on the task loop, unless the body blocks that
                    # loop (time.sleep in an async def): then this one does.
                    running.timer = self._loop.call_later(
                        task.timeout + ASYNC_TIMEOUT_SLACK, self._async_overdue, running, 0
                    )
            else:
                self._pool.submit(run_sync, job, functools.partial(self._deliver, running))
                if task.timeout is not None:
                    running.timer = self._loop.call_later(
                        task.timeout, self._sync_timed_out, running
                    )
        except Exception as exc:  # e.g. no thread could be started: the claim ends here
            self._record(running, machinery_failure(job, exc))

    def _on_task_loop(self, running: RunningTask, body: Coroutine[Any, Any, Outcome]) -> None:
        future = asyncio.run_coroutine_threadsafe(body, self._tasks_loop())
        running.future = future
        future.add_done_callback(functools.partial(self._future_done, running))

    def _package_done(self, running: RunningTask, task: asyncio.Task[Outcome]) -> None:
        # On the engine loop: record at once, no inbox needed.
        if task.cancelled():  # only the engine cancels (run cancelled, shutdown)
            self._release(running)
        elif (exc := task.exception()) is not None:
            log.error("task %s could not run: %r", running.job.task.id, exc)
            self._record(running, machinery_failure(running.job, exc))
        else:
            self._record(running, task.result())

    def _future_done(
        self, running: RunningTask, future: concurrent.futures.Future[Outcome]
    ) -> None:
        # On the task loop (or here, if cancelled before it started).
        if future.cancelled():  # only the engine cancels (run cancelled, shutdown)
            self._deliver(running, None)
            return
        exc = future.exception()
        if exc is not None:
            # The body's machinery broke (say an OSError extracting a package or spawning
            # its process): the task fails, it is never left 'running' behind our heartbeat.
            log.error("task %s could not run: %r", running.job.task.id, exc)
            self._deliver(running, machinery_failure(running.job, exc))
        else:
            self._deliver(running, future.result())

    def _deliver(self, running: RunningTask, outcome: Outcome | None) -> None:
        # Any thread: hand the outcome to the engine loop. Outcomes that finish close
        # together share one wake-up of the loop.
        with self._inbox_lock:
            self._inbox.append((running, outcome))
            if self._inbox_signalled:
                return
            self._inbox_signalled = True
        try:
            self._loop.call_soon_threadsafe(self._drain_inbox)
        except RuntimeError:  # loop closed during shutdown; the claim was handed back
            pass

    def _drain_inbox(self) -> None:
        with self._inbox_lock:
            arrived, self._inbox = self._inbox, []
            self._inbox_signalled = False
        for running, outcome in arrived:
            if running.done:
                # Timed out or abandoned meanwhile: a def body's thread is free again.
                if running.future is None:
                    self._pool.unmark_stuck()
            elif outcome is None:
                self._release(running)
            else:
                self._record(running, outcome)

    def _async_overdue(self, running: RunningTask, strikes: int) -> None:
        """An async body is past its timeout and its outcome has not arrived."""
        job = running.job
        loop = self._task_loop
        current = None if loop is None else asyncio.current_task(loop)
        if current is not None and current is job.body_task:
            # Past its timeout and still in one step: it blocks the loop (a blocking call in
            # an async def), so its own timeout cannot fire. Fail it as a def task would be.
            log.warning(
                "task %s of execution %s blocked the event loop of async tasks past its "
                "timeout (%gs); it is failed now. Do not call blocking functions (time.sleep, "
                "blocking I/O) in an async def task: await instead, or make it a def task.",
                job.task.id,
                job.claim.execution_id,
                job.task.timeout,
            )
            self._record(running, timeout_outcome(job, BLOCKED_LOOP))
            if running.future is not None:
                running.future.cancel()  # takes effect once the body lets go of the loop
            return
        if current is None:
            strikes += 1  # the loop is free, yet the body did not end at its timeout
        if strikes >= 4:
            self._record(running, timeout_outcome(job, " (it did not stop when cancelled)"))
            if running.future is not None:
                running.future.cancel()
            return
        # Another body holds the loop (this one waits its turn), or it is ending: look again.
        running.timer = self._loop.call_later(
            ASYNC_TIMEOUT_SLACK, self._async_overdue, running, strikes
        )

    def _sync_timed_out(self, running: RunningTask) -> None:
        job = running.job
        timeout = job.task.timeout
        assert timeout is not None
        started = job.body_started
        if started is None or time.monotonic() - started < timeout:
            # Still queued for a thread (or just began): the timeout counts from the body's start.
            left = timeout if started is None else timeout - (time.monotonic() - started)
            running.timer = self._loop.call_later(left, self._sync_timed_out, running)
            return
        # A thread cannot be killed: record the timeout, and ignore the body's late result.
        if self._record(running, timeout_outcome(job)):
            self._pool.mark_stuck()  # its thread stays busy: let the pool grow by one

    def _release(self, running: RunningTask) -> bool:
        if running.done:
            return False
        running.done = True
        if running.timer is not None:
            running.timer.cancel()
        self._running.pop(running.job.claim.claim_token, None)
        self.free += 1
        attempt_log = running.job.log
        if attempt_log is not None:
            attempt_log.close()  # a body that runs on (timed out, abandoned) adds no more
            if attempt_log.pending:
                self._keep_log(attempt_log)
        return True

    # ---- captured output -------------------------------------------------------------------
    def _keep_log(self, attempt_log: AttemptLog) -> None:
        """Move an attempt's buffered chunks to the rows of the next write."""
        eid, task_id, attempt = attempt_log.execution_id, attempt_log.task_id, attempt_log.attempt
        self._log_rows.extend(
            NewLogChunk(eid, task_id, attempt, stream, at, storable_text(text) or "")
            for stream, at, text in attempt_log.take()
        )

    def _flush_logs(self) -> None:
        """Store what running bodies printed so far, with any rows still waiting, in one
        transaction (none when nothing was printed). On the engine loop, or after it ended."""
        for running in self._running.values():
            attempt_log = running.job.log
            if attempt_log is not None and attempt_log.pending:
                self._keep_log(attempt_log)
        rows = self._log_rows
        if not rows:
            return
        try:
            with self.store.write() as tx:
                tx.add_task_logs(rows)
        except Exception as exc:  # kept for the next write (the database may be back)
            log.warning(
                "storing %d chunk(s) of task output failed (will retry): %s", len(rows), exc
            )
            return
        self._log_rows = []

    def _log_flush_tick(self) -> None:
        if self._stopping:
            return  # the shutdown stores the rest
        self._flush_logs()
        self._loop.call_later(LOG_FLUSH_INTERVAL, self._log_flush_tick)

    def _record(self, running: RunningTask, outcome: Outcome) -> bool:
        if not self._release(running):
            return False
        if not outcome.finished_at:
            outcome.finished_at = time.time()
        if self._now is not time.time:  # a clock a test moves: its time, as for the start
            outcome.finished_at = self._now()
        outcome.error = storable_text(outcome.error)
        outcome.traceback = storable_text(outcome.traceback)
        outcome.skip_reason = storable_text(outcome.skip_reason)
        self._outcomes.append(outcome)
        self._request_cycle()
        return True
