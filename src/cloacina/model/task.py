"""The ``@task`` decorator and the :class:`Task` it produces."""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, overload

from cloacina.errors import WorkflowDefinitionError
from cloacina.model.namespace import MAX_TASK_ID, too_long
from cloacina.model.retry import NO_RETRY, RetryPolicy
from cloacina.model.rules import TriggerRule, coerce_rule, with_default_status

TaskFunc = Callable[..., Any]
_TASK_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")
Dependency = "str | Task | Callable[..., Any]"


class Task:
    """A unit of work in a workflow: a function of one ``Context`` plus how to run it.

    The object stays callable, so ``my_task(Context({...}))`` runs the body directly, which
    makes tasks easy to unit-test.
    """

    id: str
    func: TaskFunc
    dependencies: tuple[str, ...]
    retry: RetryPolicy
    timeout: float | None
    trigger_rule: TriggerRule
    is_async: bool
    description: str
    #: How the dependencies' outputs combine into the task's input (``None``: the deep merge
    #: of DESIGN §4). Set by compatibility layers that carry another engine's semantics
    #: (``cloacina.compat.cloaca``); not part of the version.
    merge_inputs: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    #: Dynamic fan-out (DESIGN §11): the context key holding the list to map over (None:
    #: an ordinary task), how many instances may run at once across all workers (None: no
    #: limit), and whether the task completes although some instances failed.
    map_over: str | None = None
    max_parallel: int | None = None
    allow_partial: bool = False
    #: A sub-workflow (DESIGN §11, ``subworkflow(...)``): the name of the workflow the task
    #: runs as a child execution instead of a body (None: an ordinary task).
    subworkflow: str | None = None

    def __init__(
        self,
        func: TaskFunc,
        *,
        id: str | None = None,
        dependencies: Iterable[str | Task | Callable[..., Any]] = (),
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        trigger_rule: TriggerRule | str | None = None,
        description: str | None = None,
        map_over: str | None = None,
        max_parallel: int | None = None,
        allow_partial: bool = False,
    ) -> None:
        if not callable(func):
            raise WorkflowDefinitionError(f"@task needs a function, got {func!r}")
        self.func = func
        if id is not None and (not isinstance(id, str) or not _TASK_ID.match(id)):
            raise WorkflowDefinitionError(
                f"invalid task id {id!r}: use letters, digits, '_', '.' and '-' "
                "(it becomes part of the tenant::package::workflow::task name)"
            )
        self.id = id if id is not None else func.__name__
        problem = too_long("task id", self.id, MAX_TASK_ID)
        if problem:
            raise WorkflowDefinitionError(problem)
        if isinstance(dependencies, str | Task) or callable(dependencies):
            dependencies = [dependencies]
        self.dependencies = tuple(_dependency_id(self.id, d) for d in dependencies)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise WorkflowDefinitionError(
                f"task {self.id!r}: retry must be a cloacina.RetryPolicy, got {retry!r}"
            )
        self.retry = retry or NO_RETRY
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise WorkflowDefinitionError(
                f"task {self.id!r}: timeout must be a positive number of seconds, got {timeout!r}"
            )
        self.timeout = float(timeout) if timeout is not None else None
        self.trigger_rule = with_default_status(coerce_rule(trigger_rule))
        self.is_async = inspect.iscoroutinefunction(func)
        self.description = description if description is not None else (func.__doc__ or "")
        _check_signature(self.id, func)
        functools.update_wrapper(self, func)
        self.set_map(map_over, max_parallel, allow_partial)

    def set_map(
        self, map_over: str | None, max_parallel: int | None = None, allow_partial: bool = False
    ) -> None:
        """Make the task a mapped one (validated; ``map_over=None`` leaves it ordinary)."""
        if map_over is not None and (not isinstance(map_over, str) or not map_over):
            raise WorkflowDefinitionError(
                f"task {self.id!r}: map_over must name a context key (a non-empty string), "
                f"got {map_over!r}"
            )
        if max_parallel is not None and (
            isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
        ):
            raise WorkflowDefinitionError(
                f"task {self.id!r}: max_parallel must be a positive integer, got {max_parallel!r}"
            )
        if map_over is None and (max_parallel is not None or allow_partial):
            raise WorkflowDefinitionError(
                f"task {self.id!r}: max_parallel and allow_partial apply to a mapped task; "
                "add map_over='<context key of a list>'"
            )
        self.map_over = map_over
        self.max_parallel = max_parallel
        self.allow_partial = bool(allow_partial)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        deps = ", ".join(self.dependencies)
        return f"<Task {self.id!r} deps=[{deps}]>"


def _dependency_id(task_id: str, dep: object) -> str:
    if isinstance(dep, str):
        return dep
    if isinstance(dep, Task):
        return dep.id
    if callable(dep) and hasattr(dep, "__name__"):
        return str(dep.__name__)
    raise WorkflowDefinitionError(
        f"task {task_id!r}: a dependency must be a task id (str) or a task function, got {dep!r}"
    )


def _check_signature(task_id: str, func: TaskFunc) -> None:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: trust the caller
        return
    hint = f"def {getattr(func, '__name__', task_id)}(context: Context) -> None"
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    takes_varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    if not positional and not takes_varargs:
        raise WorkflowDefinitionError(
            f"task {task_id!r} cannot take a context: its function takes no positional "
            f"argument. Write it as `{hint}`."
        )
    others = positional[1:] + [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    required = [p.name for p in others if p.default is inspect.Parameter.empty]
    if required:
        raise WorkflowDefinitionError(
            f"task {task_id!r} must take the context as its only required argument, but it "
            f"also requires {', '.join(required)}. Write it as `{hint}`."
        )


@overload
def task(func: TaskFunc, /) -> Task: ...


@overload
def task(
    *,
    id: str | None = None,
    dependencies: Iterable[str | Task | Callable[..., Any]] = (),
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    trigger_rule: TriggerRule | str | None = None,
    description: str | None = None,
    map_over: str | None = None,
    max_parallel: int | None = None,
    allow_partial: bool = False,
) -> Callable[[TaskFunc], Task]: ...


def task(
    func: TaskFunc | None = None,
    /,
    *,
    id: str | None = None,
    dependencies: Iterable[str | Task | Callable[..., Any]] = (),
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    trigger_rule: TriggerRule | str | None = None,
    description: str | None = None,
    map_over: str | None = None,
    max_parallel: int | None = None,
    allow_partial: bool = False,
) -> Task | Callable[[TaskFunc], Task]:
    """Declare a task: ``@task`` or ``@task(id=..., dependencies=[...], retry=..., timeout=...)``.

    ``dependencies`` are task ids or task functions; ``id`` defaults to the function's name.
    The function takes one ``Context``; it may be ``async``; it may return a dict that is merged
    into the context.

    ``map_over="files"`` runs one instance of the task per element of ``context["files"]``
    (the element is ``context["item"]``, its index ``current_task().map_index``); the task's
    output is its input plus ``{id: [each instance's return value, in index order]}``.
    ``max_parallel`` caps the instances running at once across all workers;
    ``allow_partial=True`` completes the task although instances failed (``None`` for them).
    """

    def decorate(f: TaskFunc) -> Task:
        return Task(
            f,
            id=id,
            dependencies=dependencies,
            retry=retry,
            timeout=timeout,
            trigger_rule=trigger_rule,
            description=description,
            map_over=map_over,
            max_parallel=max_parallel,
            allow_partial=allow_partial,
        )

    if func is not None:
        return decorate(func)
    return decorate
