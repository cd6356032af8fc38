"""Task logs: what each attempt of a task printed and logged, read whole or followed as it
is written. Mixed into ``DefaultRunner``; the CLI and the HTTP API call these methods.

The engine stores an attempt's output in chunks while it runs (about every second) and the
rest in the transaction that records its outcome. So a follower that sees the attempt ended
and then reads once more has everything.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cloacina.errors import AttemptNotFoundError, ExecutionNotFoundError, TaskNotFoundError
from cloacina.model.status import TERMINAL_EXECUTION, TaskStatus, to_datetime

if TYPE_CHECKING:
    from cloacina.store.base import Store
    from cloacina.store.records import LogChunkRow

#: How often a follower looks for new output (seconds).
FOLLOW_INTERVAL = 0.2


@dataclass(frozen=True)
class TaskLog:
    """The output of one attempt of one task."""

    task_id: str
    attempt: int
    text: str


@dataclass(frozen=True)
class TaskLogChunk:
    """A piece of an attempt's output as it was stored: ``stream`` is ``stdout``,
    ``stderr`` or ``log`` (a logging record); ``id`` orders the pieces of a run."""

    id: int
    task_id: str
    attempt: int
    stream: str
    at: datetime
    text: str


def _chunk(row: LogChunkRow) -> TaskLogChunk:
    at = to_datetime(row.created_at)
    assert at is not None
    return TaskLogChunk(row.id, row.task_id, row.attempt, row.stream, at, row.text)


class _AttemptFollower:
    """One follow of one attempt: each :meth:`step` reads what is new and says whether the
    attempt has ended (its state is read before its output, so the last step has it all)."""

    def __init__(self, store: Store, execution_id: str, task_id: str, attempt: int) -> None:
        self.store = store
        self.execution_id = execution_id
        self.task_id = task_id
        self.attempt = attempt  # 0: the task has not started; follow its first attempt
        self.after = 0

    def step(self) -> tuple[str, bool]:
        state = self.store.task_attempt_state(self.execution_id, self.task_id)
        if state is None:  # the run was removed meanwhile
            return "", True
        current, status = state
        if self.attempt == 0:
            if current == 0:
                # Not started: a skipped task (or a cancelled run's) never will.
                return "", status.is_terminal
            self.attempt = 1
        ended = current != self.attempt or status != TaskStatus.RUNNING
        rows = self.store.read_task_logs(self.execution_id, self.task_id, self.attempt, self.after)
        if rows:
            self.after = rows[-1].id
        return "".join(row.text for row in rows), ended


class LogService:
    """Reading and following the captured output of tasks."""

    if TYPE_CHECKING:
        store: Store

    def _log_attempt(self, execution_id: str, task_id: str, attempt: int | None) -> int:
        """The attempt meant (None: the latest; 0 when the task has not started), checked."""
        state = self.store.task_attempt_state(execution_id, task_id)
        if state is None:
            if self.store.execution_status(execution_id) is None:
                raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
            tasks = [t.task_id for t in self.store.get_tasks(execution_id)]
            close = difflib.get_close_matches(task_id, tasks, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            shown = ", ".join(tasks[:20]) + (", ..." if len(tasks) > 20 else "")
            raise TaskNotFoundError(
                f"workflow execution {execution_id} has no task {task_id!r}{hint} "
                f"(its tasks: {shown})"
            )
        current = state[0]
        if attempt is None:
            return current
        if attempt < 1 or attempt > current:
            if current == 0:
                why = "it has not started yet"
            else:
                why = f"its attempts are 1 to {current}; leave the attempt out for the latest"
            raise AttemptNotFoundError(
                f"task {task_id!r} of workflow execution {execution_id} has no attempt "
                f"{attempt}: {why}"
            )
        return attempt

    def get_task_logs(self, execution_id: str, task_id: str, attempt: int | None = None) -> str:
        """What an attempt of a task printed and logged (``attempt`` None: the latest; ""
        for a task that has not started). Raises ExecutionNotFoundError, TaskNotFoundError
        or AttemptNotFoundError."""
        number = self._log_attempt(execution_id, task_id, attempt)
        if number == 0:
            return ""
        return "".join(r.text for r in self.store.read_task_logs(execution_id, task_id, number))

    def follow_task_logs(
        self,
        execution_id: str,
        task_id: str,
        attempt: int | None = None,
        *,
        poll_interval: float = FOLLOW_INTERVAL,
    ) -> Iterator[str]:
        """The output of an attempt as it is written, from its start, until the attempt
        ends (at once for an attempt that has ended). ``attempt`` None: the latest, or the
        first if the task has not started yet (it is waited for). The errors of
        :meth:`get_task_logs` are raised here, before the first piece."""
        number = self._log_attempt(execution_id, task_id, attempt)
        follower = _AttemptFollower(self.store, execution_id, task_id, number)

        def pieces() -> Iterator[str]:
            while True:
                text, ended = follower.step()
                if text:
                    yield text
                if ended:
                    return
                time.sleep(poll_interval)

        return pieces()

    async def follow_task_logs_async(
        self,
        execution_id: str,
        task_id: str,
        attempt: int | None = None,
        *,
        poll_interval: float = FOLLOW_INTERVAL,
    ) -> AsyncIterator[str]:
        """:meth:`follow_task_logs` for an event loop (the database is read on a thread):
        ``async for text in await runner.follow_task_logs_async(...)``. The errors are
        raised by the await, so a server can answer 404 before it starts a stream."""
        number = await asyncio.to_thread(self._log_attempt, execution_id, task_id, attempt)
        follower = _AttemptFollower(self.store, execution_id, task_id, number)

        async def pieces() -> AsyncIterator[str]:
            while True:
                text, ended = await asyncio.to_thread(follower.step)
                if text:
                    yield text
                if ended:
                    return
                await asyncio.sleep(poll_interval)

        return pieces()

    def get_execution_logs(self, execution_id: str) -> list[TaskLog]:
        """The latest attempt's output of every task of a run that has started, in the
        run's task order (tasks that printed nothing have empty text)."""
        if self.store.execution_status(execution_id) is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        latest = {t.task_id: t.attempt for t in self.store.get_tasks(execution_id) if t.attempt}
        texts: dict[str, list[str]] = {task_id: [] for task_id in latest}
        for row in self.store.read_run_logs(execution_id):
            if latest.get(row.task_id) == row.attempt:
                texts[row.task_id].append(row.text)
        return [TaskLog(task_id, n, "".join(texts[task_id])) for task_id, n in latest.items()]

    def follow_execution_logs(
        self, execution_id: str, *, poll_interval: float = FOLLOW_INTERVAL
    ) -> Iterator[TaskLogChunk]:
        """Every chunk of output of a run (every task, every attempt) in the order it was
        stored, from the start, until the run has ended. ExecutionNotFoundError is raised
        here, before the first chunk."""
        if self.store.execution_status(execution_id) is None:
            raise ExecutionNotFoundError(f"no workflow execution with id {execution_id!r}")
        store = self.store

        def chunks() -> Iterator[TaskLogChunk]:
            after = 0
            while True:
                status = store.execution_status(execution_id)
                rows = store.read_run_logs(execution_id, after)
                for row in rows:
                    yield _chunk(row)
                if rows:
                    after = rows[-1].id
                if status is None or status in TERMINAL_EXECUTION:
                    return  # ended (or removed meanwhile)
                time.sleep(poll_interval)

        return chunks()


__all__ = ["LogService", "TaskLog", "TaskLogChunk"]
