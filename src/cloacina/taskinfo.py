"""What a running task can learn about itself: ``cloacina.current_task()``."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    """The task being run: its run, id, full namespace and attempt numbers.

    ``attempt`` counts tries (1 on the first run, 2 on the first retry...). ``recovery`` counts
    how often the task was taken back from a worker that died while running it.
    ``map_index`` is an instance's index in its mapped task's list (None for other tasks).
    """

    execution_id: str
    task_id: str
    workflow_name: str
    namespace: str
    attempt: int
    recovery: int
    map_index: int | None = None


_current: contextvars.ContextVar[TaskInfo | None] = contextvars.ContextVar(
    "cloacina_current_task", default=None
)


def current_task() -> TaskInfo | None:
    """The task running in this thread or coroutine, or ``None`` outside a task."""
    return _current.get()


def set_current(info: TaskInfo | None) -> contextvars.Token[TaskInfo | None]:
    return _current.set(info)


def reset_current(token: contextvars.Token[TaskInfo | None]) -> None:
    _current.reset(token)
