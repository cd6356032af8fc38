"""Command tasks: a task whose body is an executable shipped in the package.

Inside a ``@packaged_workflow`` class::

    enrich = command_task(id="enrich", command=["bin/enrich.sh", "--fast"],
                          dependencies=["extract"], timeout=60)

The executable reads the task's input context as JSON on stdin and writes its updates as
JSON on stdout (see DESIGN.md §6). The builder checks that ``command[0]`` is one of the
package's shipped files (``[tool.cloacina] include``) and is executable; the package runtime
runs it. Called in any other process, the task fails with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cloacina.errors import PackageError, WorkflowDefinitionError
from cloacina.model.retry import RetryPolicy
from cloacina.model.rules import TriggerRule
from cloacina.model.task import Task


class _CommandBody:
    """The body of a command task outside its package: it refuses to run.

    A callable object rather than a function on purpose: a workflow's version hashes each
    task body's source, and every command task would share one function's source. An object
    without ``__code__`` is hashed by its ``repr``, which names the command, so changing the
    command changes the workflow's version.
    """

    def __init__(self, task_id: str, command: tuple[str, ...]) -> None:
        self.task_id = task_id
        self.command = command
        self.__name__ = task_id
        self.__qualname__ = task_id

    def __call__(self, context: Any) -> None:
        raise PackageError(
            f"command task {self.task_id!r} runs {list(self.command)!r}, which exists only "
            "inside a built .cloacina package; build it with `cloacina package build` and "
            "run it through a runner that registered the package"
        )

    def __repr__(self) -> str:
        return f"<command task {self.task_id!r}: {list(self.command)!r}>"


class CommandTask(Task):
    """A :class:`Task` whose work is an external command (``command``) of the package."""

    command: tuple[str, ...]


def command_task(
    *,
    id: str,
    command: Sequence[str],
    dependencies: Iterable[str | Task | Callable[..., Any]] = (),
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    trigger_rule: TriggerRule | str | None = None,
    description: str | None = None,
    map_over: str | None = None,
    max_parallel: int | None = None,
    allow_partial: bool = False,
) -> CommandTask:
    """Declare a task that runs ``command`` (a path inside the package, then its arguments).

    ``command[0]`` is relative to the package root, e.g. ``"bin/enrich.sh"``, and must be
    shipped with ``[tool.cloacina] include = ["bin/enrich.sh"]``. A mapped command task
    (``map_over=...``) runs once per item; each run prints its return value (any JSON).
    """
    if not isinstance(id, str) or not id:
        raise WorkflowDefinitionError("command_task needs an id, e.g. command_task(id='enrich')")
    if isinstance(command, str | bytes) or not isinstance(command, Sequence):
        raise WorkflowDefinitionError(
            f"command task {id!r}: command must be a list of strings such as "
            f'["bin/enrich.sh", "--verbose"], got {command!r}'
        )
    parts = tuple(command)
    if not parts or not all(isinstance(p, str) and p for p in parts):
        raise WorkflowDefinitionError(
            f"command task {id!r}: command must be a non-empty list of non-empty strings, "
            f"got {command!r}"
        )
    program = parts[0]
    if program.startswith("/") or "\\" in program or ".." in program.split("/"):
        raise WorkflowDefinitionError(
            f"command task {id!r}: {program!r} must be a path relative to the package root "
            "(e.g. 'bin/enrich.sh'), shipped with [tool.cloacina] include"
        )
    task = CommandTask(
        _CommandBody(id, parts),
        id=id,
        dependencies=dependencies,
        retry=retry,
        timeout=timeout,
        trigger_rule=trigger_rule,
        description=description if description is not None else f"runs {' '.join(parts)}",
        map_over=map_over,
        max_parallel=max_parallel,
        allow_partial=allow_partial,
    )
    task.command = parts
    return task


__all__ = ["CommandTask", "command_task"]
