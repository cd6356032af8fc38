"""cloaca's ``@task`` and ``TaskHandle``: task definitions kept by namespace, and the body
Cloacina runs for each, which carries cloaca's semantics.

What the body does that Cloacina's own tasks do not (DESIGN §4 keeps its own rules):

* the function gets a *copy* of its input; returning ``None`` keeps the input as the output
  (mutations are discarded), returning a ``Context`` makes it the output, anything else
  fails the attempt;
* ``on_failure(task_id, message, context)`` runs on every failed attempt,
  ``on_success(task_id, context)`` once, and errors in either are printed and swallowed;
* cloaca's ``RetryCondition`` reads the failure's message: a failure it does not retry is
  raised as ``TaskError(retryable=False)``, which Cloacina does not retry.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from cloacina.compat.cloaca.context import Context, smart_merge
from cloacina.compat.cloaca.retry import RetryPolicy, policy_from_keywords
from cloacina.compat.cloaca.rules import normalize_rule, to_cloacina_rule
from cloacina.errors import TaskError
from cloacina.model.context import Context as _Context
from cloacina.model.task import Task

F = TypeVar("F", bound=Callable[..., Any])
_HANDLE_NAMES = ("handle", "task_handle")


class TaskHandle:
    """Given to a task whose second parameter is ``handle`` (or ``task_handle``).

    ``defer_until(condition, poll_interval_ms=1000)`` waits (sleeping first, then asking)
    until ``condition()`` returns ``True``. Cloacina keeps the task's worker thread while it
    waits; ``is_slot_held()`` is ``False`` meanwhile, as in cloaca.
    """

    __slots__ = ("_consumed", "_held")
    _consumed: bool
    _held: bool

    def __init__(self) -> None:
        raise TypeError("TaskHandle has no public constructor: the runner passes one to a task")

    @classmethod
    def _new(cls) -> TaskHandle:
        handle = object.__new__(cls)
        handle._held = True
        handle._consumed = False
        return handle

    def _check(self) -> None:
        if self._consumed:
            raise ValueError("TaskHandle has already been consumed")

    def defer_until(self, condition: Callable[[], Any], poll_interval_ms: int = 1000) -> None:
        """Wait until ``condition()`` is ``True``, asking every ``poll_interval_ms``."""
        self._check()
        if not callable(condition):
            raise ValueError("defer_until failed: condition must be callable")
        self._held = False
        try:
            while True:
                time.sleep(max(0, poll_interval_ms) / 1000.0)
                try:
                    done = condition()
                except Exception:
                    traceback.print_exc(file=sys.stderr)
                    done = False
                if done is True:
                    return
        finally:
            self._held = True

    def is_slot_held(self) -> bool:
        """Whether the task holds its concurrency slot (not while deferred)."""
        self._check()
        return self._held


@dataclass
class TaskDef:
    """A ``@cloaca.task`` as declared."""

    id: str
    namespace: str
    func: Callable[..., Any]
    dependencies: tuple[str, ...]
    policy: RetryPolicy
    rule: dict[str, Any]
    on_success: Callable[..., Any] | None = None
    on_failure: Callable[..., Any] | None = None
    handle_aware: bool = False
    invokes: Any = None
    post_invocation: Callable[..., Any] | None = None

    def to_task(self) -> Task:
        """The Cloacina task that runs this definition with cloaca's semantics."""
        definition = self

        def body(context: _Context) -> None:
            run_attempt(definition, context)

        body.__name__ = self.id
        task = Task(
            body,
            id=self.id,
            dependencies=self.dependencies,
            retry=self.policy.to_cloacina(),
            trigger_rule=to_cloacina_rule(self.rule),
            description=self.func.__doc__ or "",
        )
        task.merge_inputs = smart_merge
        return task


_lock = threading.Lock()
#: Every ``@cloaca.task`` of this process by ``tenant::package::workflow::task``; a new
#: definition under the same name replaces the old one, as in cloaca.
registry: dict[str, TaskDef] = {}


def namespace_of(scope: tuple[str, str, str], task_id: str) -> str:
    return f"{scope[0]}::{scope[1]}::{scope[2]}::{task_id}"


def tasks_in(scope: tuple[str, str, str]) -> list[TaskDef]:
    """The definitions registered under a workflow's namespace, oldest first."""
    prefix = namespace_of(scope, "")
    with _lock:
        return [d for ns, d in registry.items() if ns.startswith(prefix)]


def lookup(namespace: str) -> TaskDef | None:
    with _lock:
        return registry.get(namespace)


def _name_of(item: object, i: int) -> str:
    if isinstance(item, str):
        return item
    name = getattr(item, "__name__", None)
    if isinstance(name, str):
        return name
    raise ValueError(
        f"Dependency {i} must be either a string or a function object with __name__ attribute"
    )


def _handle_aware(func: Callable[..., Any]) -> bool:
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    return bool(code.co_argcount >= 2 and code.co_varnames[1] in _HANDLE_NAMES)


def task(
    *,
    id: str | None = None,
    dependencies: Iterable[object] | None = None,
    retry: RetryPolicy | None = None,
    retry_attempts: int | None = None,
    retry_backoff: str | None = None,
    retry_delay_ms: int | None = None,
    retry_max_delay_ms: int | None = None,
    retry_condition: str | None = None,
    retry_jitter: bool | None = None,
    on_success: Callable[..., Any] | None = None,
    on_failure: Callable[..., Any] | None = None,
    invokes: Any = None,
    post_invocation: Callable[..., Any] | None = None,
    trigger_rules: object = None,
) -> Callable[[F], F]:
    """Declare a task of the enclosing ``WorkflowBuilder``; the function is returned as is."""
    given = {
        "retry_attempts": retry_attempts,
        "retry_backoff": retry_backoff,
        "retry_delay_ms": retry_delay_ms,
        "retry_max_delay_ms": retry_max_delay_ms,
        "retry_condition": retry_condition,
        "retry_jitter": retry_jitter,
    }
    if retry is not None:
        clashing = [k for k, v in given.items() if v is not None]
        if clashing:
            raise ValueError(
                "@task(retry=RetryPolicy(...)) cannot be combined with the retry_* keyword "
                f"arguments (got: {', '.join(clashing)}). Use the RetryPolicy object OR the "
                "keywords, not both."
            )
        if not isinstance(retry, RetryPolicy):
            raise ValueError(f"@task(retry=...) takes a cloaca.RetryPolicy, not {retry!r}")
        policy = retry
    else:
        policy = policy_from_keywords(
            retry_attempts,
            retry_backoff,
            retry_delay_ms,
            retry_max_delay_ms,
            retry_condition,
            retry_jitter,
        )
    rule = normalize_rule(trigger_rules)
    deps = list(dependencies or [])

    def decorate(func: F) -> F:
        from cloacina.compat.cloaca.graphs import check_invokes
        from cloacina.compat.cloaca.workflow import current_scope

        scope = current_scope()
        if scope is None:
            raise ValueError(
                "No workflow context available. Tasks must be defined within a "
                "WorkflowBuilder context manager."
            )
        task_id = id if id is not None else func.__name__
        dep_ids = tuple(_name_of(d, i) for i, d in enumerate(deps))
        if post_invocation is not None and invokes is None:
            raise ValueError("@cloaca.task: `post_invocation` requires `invokes=...` to be set")
        if invokes is not None:
            check_invokes(invokes)
        namespace = namespace_of(scope, task_id)
        definition = TaskDef(
            id=task_id,
            namespace=namespace,
            func=func,
            dependencies=dep_ids,
            policy=policy,
            rule=rule,
            on_success=on_success,
            on_failure=on_failure,
            handle_aware=_handle_aware(func),
            invokes=invokes,
            post_invocation=post_invocation,
        )
        with _lock:
            registry[namespace] = definition
        return func

    return decorate


# ---- one attempt -------------------------------------------------------------------------------
def _call_back(callback: Callable[..., Any] | None, *args: Any) -> None:
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:  # cloaca prints a callback's error and goes on
        traceback.print_exc(file=sys.stderr)


def _failed(d: TaskDef, message: str, context: dict[str, Any], cause: BaseException) -> TaskError:
    _call_back(d.on_failure, d.id, message, Context._adopt(copy.deepcopy(context)))
    error = TaskError(message, retryable=d.policy.matches(message))
    error.__cause__ = cause
    return error


def run_attempt(d: TaskDef, context: _Context) -> None:
    """Run one attempt of ``d`` on Cloacina's input ``context``, leaving its output there."""
    received = context.to_dict()
    user_ctx = Context._adopt(copy.deepcopy(received))
    handle = TaskHandle._new() if d.handle_aware else None
    try:
        returned = d.func(user_ctx, handle) if handle is not None else d.func(user_ctx)
        if inspect.isawaitable(returned):
            returned = asyncio.run(_awaited(returned))
    except Exception as exc:
        message = f"Python task execution failed: {type(exc).__name__}: {exc}"
        raise _failed(d, message, received, exc) from exc
    finally:
        if handle is not None:
            handle._consumed = True
    if returned is None:
        output = received
    elif isinstance(returned, _Context):
        output = returned.to_dict() if type(returned) is not Context else returned._data
    else:
        message = (
            "Python task execution failed: a task returns a cloaca.Context or None, "
            f"not {type(returned).__name__}"
        )
        raise _failed(d, message, received, TypeError(message))
    if d.invokes is not None:
        from cloacina.compat.cloaca.graphs import invoke

        try:
            output = invoke(d.invokes, d.post_invocation, Context._adopt(output))
        except Exception as exc:
            message = f"Python task execution failed: {exc}"
            raise _failed(d, message, output, exc) from exc
    _call_back(d.on_success, d.id, Context._adopt(copy.deepcopy(output)))
    if output is not received:
        for key in list(context):
            context.remove(key)
        for key, value in output.items():
            context.set(key, value)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
