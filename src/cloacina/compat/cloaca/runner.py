"""cloaca's ``DefaultRunner`` and its result, on :class:`cloacina.DefaultRunner`.

What the result carries differently from Cloacina's own ``WorkflowResult``: ``status`` is
cloaca's word (``"Completed"``, ``"Failed"``...), ``error_message`` counts the tasks, and
``final_context`` is the output of the task that completed last (Cloacina's is the merge
of the leaves' outputs), or the input when no task completed.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from cloacina.compat.cloaca.config import DefaultRunnerConfig
from cloacina.compat.cloaca.context import Context
from cloacina.compat.cloaca.schedules import CronMethods, TriggerMethods
from cloacina.model.status import TaskStatus
from cloacina.model.status import WorkflowResult as _Result

if TYPE_CHECKING:
    from cloacina.runner import DefaultRunner as _Runner

_STATUS = {
    "pending": "Pending",
    "running": "Running",
    "paused": "Paused",
    "completed": "Completed",
    "failed": "Failed",
    "cancelled": "Cancelled",
}
_SCHEMA = re.compile(r"^\w+$")
#: How long a runner waits for a PostgreSQL server to answer before giving up (seconds).
CONNECT_TIMEOUT = 5.0


class WorkflowResult:
    """The outcome of ``DefaultRunner.execute``: ``status``, ``error_message``,
    ``final_context`` (a new ``Context`` on each access), ``start_time``, ``end_time``."""

    __slots__ = ("_final", "end_time", "error_message", "execution_id", "start_time", "status")

    def __init__(self) -> None:
        raise TypeError("WorkflowResult has no constructor: DefaultRunner.execute returns one")

    @classmethod
    def _from(cls, runner: _Runner, result: _Result) -> WorkflowResult:
        out = object.__new__(cls)
        out.execution_id = result.execution_id
        out.status = _STATUS.get(str(result.status), str(result.status).title())
        out.start_time = _iso(result.started_at or result.created_at) or ""
        out.end_time = _iso(result.finished_at)
        counts = {s: 0 for s in TaskStatus}
        for t in result.tasks.values():
            counts[t.status] += 1
        if out.status == "Failed":
            out.error_message = (
                f"{counts[TaskStatus.FAILED]} task(s) failed, "
                f"{counts[TaskStatus.COMPLETED]} completed, {counts[TaskStatus.SKIPPED]} skipped"
            )
        elif out.status == "Completed":
            out.error_message = None
        else:
            out.error_message = result.error
        out._final = _last_output(runner, result)
        return out

    execution_id: str
    status: str
    error_message: str | None
    start_time: str
    end_time: str | None
    _final: dict[str, Any]

    @property
    def final_context(self) -> Context:
        return Context(self._final)

    def __repr__(self) -> str:
        return f"WorkflowResult(status={self.status}, error={self.error_message})"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _last_output(runner: _Runner, result: _Result) -> dict[str, Any]:
    """The output of the task that completed last (ties: the largest task id)."""
    done = [
        (t.finished_at, t.task_id)
        for t in result.tasks.values()
        if t.status == TaskStatus.COMPLETED and t.finished_at is not None
    ]
    if done:
        output = runner.get_task_output(result.execution_id, max(done)[1])
        if output is not None:
            return output
    return dict(result.input_context or {})


def cloacina_url(url: str, scratch: Callable[[], str]) -> str:
    """cloaca's URL in Cloacina's (SQLAlchemy's) form: cloaca reads ``sqlite://`` + a path
    (``sqlite:///tmp/x.db`` is the absolute ``/tmp/x.db``), SQLAlchemy ``sqlite:///`` +
    a path (``sqlite:////tmp/x.db``). Its query parameters are ignored, as by cloaca.
    ``sqlite://:memory:`` becomes a file in ``scratch()`` (Cloacina's threads share a
    database through a file)."""
    if not url.startswith("sqlite://"):
        return url
    path = url[len("sqlite://") :].split("?", 1)[0]
    if path in (":memory:", ""):
        path = os.path.join(scratch(), "memory.db")
    return f"sqlite:///{path}"


def _open(
    url: str,
    config: DefaultRunnerConfig | None,
    schema: str | None,
    scratch: Callable[[], str],
) -> Any:
    from cloacina.runner import DefaultRunner as _Runner

    url = cloacina_url(url, scratch)
    options: dict[str, Any] = {}
    postgres = url.startswith(("postgres://", "postgresql://", "postgresql+"))
    if postgres:
        options["connect_timeout"] = CONNECT_TIMEOUT
    if config is not None:
        options["max_concurrent_tasks"] = config.max_concurrent_tasks
        options["poll_interval"] = max(config.scheduler_poll_interval_ms, 1) / 1000.0
        if postgres:
            options["pool_size"] = config.db_pool_size
    if schema is not None:
        options["tenant"] = schema
    return _Runner(url, **options)


class DefaultRunner(CronMethods, TriggerMethods):
    """cloaca's runner: ``DefaultRunner(url).execute(name, Context(...))``.

    A :class:`cloacina.DefaultRunner` underneath (``.runner``) runs the workflows that
    ``WorkflowBuilder`` registered in this process.
    """

    _runner: _Runner
    _scratch: tempfile.TemporaryDirectory[str] | None

    def __init__(self, database_url: str) -> None:
        self._setup(database_url)

    def _setup(
        self, url: str, config: DefaultRunnerConfig | None = None, schema: str | None = None
    ) -> None:
        self._scratch = None

        def scratch() -> str:
            self._scratch = tempfile.TemporaryDirectory(prefix="cloaca-memory-")
            return self._scratch.name

        try:
            self._runner = _open(url, config, schema, scratch)
        except Exception as exc:
            self._cleanup()
            if schema is not None:
                raise RuntimeError(
                    "Failed to create DefaultRunner: Configuration error: Failed to set up "
                    f"schema '{schema}': {exc}"
                ) from None
            raise RuntimeError(f"Failed to create DefaultRunner: {exc}") from None

    def _cleanup(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    @staticmethod
    def with_config(database_url: str, config: DefaultRunnerConfig) -> DefaultRunner:
        """A runner with cloaca's settings (concurrency, poll interval, pool size)."""
        if not isinstance(config, DefaultRunnerConfig):
            raise TypeError("with_config takes a cloaca.DefaultRunnerConfig")
        runner = object.__new__(DefaultRunner)
        runner._setup(database_url, config)
        return runner

    @staticmethod
    def with_schema(database_url: str, schema: str) -> DefaultRunner:
        """A runner on PostgreSQL schema ``schema`` (created and migrated when needed):
        Cloacina's tenant of that name (schema names are lower-cased, as PostgreSQL folds
        unquoted names)."""
        url = str(database_url)
        if not url.startswith(("postgres://", "postgresql://")):
            raise ValueError(
                "Schema-based multi-tenancy requires PostgreSQL. Use a postgres:// or "
                "postgresql:// URL."
            )
        if schema == "":
            raise ValueError("Schema name cannot be empty")
        if not _SCHEMA.match(str(schema)):
            raise ValueError(
                "Schema name must contain only alphanumeric characters and underscores"
            )
        tenant = str(schema).lower()  # a name Cloacina refuses fails as a set-up error
        runner = object.__new__(DefaultRunner)
        runner._setup(url, schema=tenant)
        return runner

    @property
    def runner(self) -> _Runner:
        """The Cloacina runner underneath (its whole API: pause, rerun, logs...)."""
        return self._runner

    def execute(
        self, workflow_name: str, context: Context | Mapping[str, Any] | None = None
    ) -> WorkflowResult:
        """Run ``workflow_name`` on a copy of ``context`` and wait for its end. A failed run
        is returned (``status == "Failed"``); ``ValueError`` when it cannot run at all."""
        try:
            result = self._runner.execute(workflow_name, context)
            return WorkflowResult._from(self._runner, result)
        except Exception as exc:
            raise ValueError(f"Workflow execution failed: {exc}") from exc

    def shutdown(self) -> None:
        """Stop the runner (again: nothing)."""
        self._runner.shutdown()
        self._cleanup()

    def __enter__(self) -> DefaultRunner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self.shutdown()
        return False

    def __repr__(self) -> str:
        return "DefaultRunner(thread_separated_async_runtime)"


#: cloaca 0.3.1's name of the result class.
PipelineResult = WorkflowResult
