"""Triggers: ``@trigger`` poll functions that start a workflow run when they return a context.

``@trigger(workflow="ingest", poll_interval=30)`` on a function of no arguments declares a
:class:`Trigger` and keeps it in this process's :data:`trigger_catalog` (as ``@workflow``
keeps workflows). A runner that executes tasks records the triggers it knows in its database
and polls each one every ``poll_interval`` seconds: a returned dict (or
:class:`~cloacina.model.context.Context`) starts a run with that context, ``None`` starts
nothing. While a run started with the same context is still active, the same context does
not start another, unless ``allow_concurrent=True``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from cloacina.errors import WorkflowDefinitionError
from cloacina.model.context import Context, dumps_context
from cloacina.model.namespace import MAX_WORKFLOW_NAME

F = TypeVar("F", bound=Callable[..., Any])

#: Longest trigger name the database keeps (``triggers.name``).
MAX_TRIGGER_NAME = 255
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:<>\-]*$")
#: The workflow reference a trigger starts: ``workflow``, ``package::workflow``, with an
#: optional ``@version``.
_WORKFLOW = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:@+\-]*$")


@dataclass(frozen=True, eq=False)
class Trigger:
    """A declared poll function: which workflow it starts, how often it is called."""

    name: str
    workflow: str
    poll_interval: float
    fn: Callable[[], Any] = field(repr=False)
    allow_concurrent: bool = False
    #: The package that declared it (None: defined in this process).
    package: str | None = None

    def poll(self) -> dict[str, Any] | None:
        """Call the function once: the context of the run to start, or None.

        Raises :class:`~cloacina.errors.WorkflowDefinitionError` when the function returned
        something else than a mapping or None, and a context error when it cannot be stored.
        """
        result = self.fn()
        return context_of(self.name, result)

    def starts(self, wf: Any) -> bool:
        """Whether this trigger starts workflow ``wf`` (named plainly or as
        ``package::name``)."""
        return self.workflow in (wf.name, f"{wf.package}::{wf.name}")

    def to_dict(self) -> dict[str, Any]:
        """The declaration as a package's manifest carries it."""
        return {
            "name": self.name,
            "workflow": self.workflow,
            "poll_interval": self.poll_interval,
            "allow_concurrent": self.allow_concurrent,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], fn: Callable[[], Any], package: str) -> Trigger:
        """A declaration read from package ``package``'s manifest, polled by calling ``fn``
        (which asks the package's process). Checked as the decorator checks it."""
        try:
            return make_trigger(
                fn,
                workflow=data["workflow"],
                poll_interval=data["poll_interval"],
                allow_concurrent=bool(data.get("allow_concurrent", False)),
                name=data["name"],
                package=package,
            )
        except KeyError as exc:
            raise WorkflowDefinitionError(
                f"a trigger of package {package!r} lacks its {exc.args[0]!r}"
            ) from None


def context_of(name: str, result: object) -> dict[str, Any] | None:
    """A poll function's result as the context of the run it starts (None: no run)."""
    if result is None:
        return None
    if isinstance(result, Context):
        data = result.to_dict()
    elif isinstance(result, Mapping):
        data = dict(result)
    else:
        raise WorkflowDefinitionError(
            f"trigger {name!r} returned {type(result).__name__}: a trigger returns a dict "
            "(the context of the run to start) or None (start nothing)"
        )
    dumps_context(data)  # the context rules: JSON, string keys, bounded nesting
    return data


def trigger_key(context: Mapping[str, Any]) -> str:
    """The de-duplication key of a triggered context: SHA-256 of its canonical JSON (keys
    sorted, no spaces), so equal contexts get equal keys whatever their key order."""
    dumps_context(context)  # the same refusals as a run's context, with the offending key
    canonical = _canonical(context)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _canonical(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_poll_interval(name: str, interval: object) -> float:
    """``poll_interval`` in seconds (a positive number or a timedelta)."""
    if isinstance(interval, timedelta):
        interval = interval.total_seconds()
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not math.isfinite(interval)
        or interval <= 0
    ):
        raise WorkflowDefinitionError(
            f"invalid poll_interval {interval!r} for trigger {name!r}: give the seconds "
            "between two polls (a positive number or a timedelta)"
        )
    return float(interval)


def check_trigger_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > MAX_TRIGGER_NAME:
        raise WorkflowDefinitionError(
            f"invalid trigger name {name!r}: start with a letter or '_', use letters, digits, "
            f"'_', '.', ':', '<', '>' and '-', at most {MAX_TRIGGER_NAME} characters"
        )
    return name


def _check_workflow(name: str, workflow: object) -> str:
    if (
        not isinstance(workflow, str)
        or not _WORKFLOW.match(workflow)
        or len(workflow) > 2 * MAX_WORKFLOW_NAME
    ):
        raise WorkflowDefinitionError(
            f"invalid workflow {workflow!r} for trigger {name!r}: name the workflow to start "
            "('ingest', or 'package::workflow')"
        )
    return workflow


def _check_signature(name: str, fn: object) -> None:
    if not callable(fn):
        raise WorkflowDefinitionError(f"@trigger decorates a function, not {fn!r}")
    if inspect.iscoroutinefunction(fn):
        raise WorkflowDefinitionError(
            f"trigger {name!r} is an async function: a trigger is a plain function (it is "
            "called on a thread of its own)"
        )
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    required = [
        p
        for p in sig.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if required:
        raise WorkflowDefinitionError(
            f"trigger {name!r} takes argument(s) {', '.join(p.name for p in required)}: a "
            "trigger function is called with no arguments (give them defaults)"
        )


def make_trigger(
    fn: Callable[[], Any],
    *,
    workflow: str,
    poll_interval: float | timedelta,
    allow_concurrent: bool = False,
    name: str | None = None,
    package: str | None = None,
) -> Trigger:
    """A validated :class:`Trigger` (not added to any catalog)."""
    label = name if name is not None else getattr(fn, "__qualname__", repr(fn))
    _check_signature(str(label), fn)
    label = check_trigger_name(label)
    return Trigger(
        name=label,
        workflow=_check_workflow(label, workflow),
        poll_interval=check_poll_interval(label, poll_interval),
        fn=fn,
        allow_concurrent=bool(allow_concurrent),
        package=package,
    )


class TriggerCatalog:
    """The triggers this process knows, by name. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, Trigger] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        """Bumped on every change, so users can cache what they derive from the catalog."""
        return self._generation

    def add(self, trig: Trigger) -> None:
        """Know ``trig``; a trigger of the same name is replaced (a module imported again)."""
        with self._lock:
            self._by_name[trig.name] = trig
            self._generation += 1

    def find(self, name: str) -> Trigger | None:
        return self._by_name.get(name)

    def remove(self, name: str) -> None:
        with self._lock:
            if self._by_name.pop(name, None) is not None:
                self._generation += 1

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def all(self) -> list[Trigger]:
        with self._lock:
            return [self._by_name[n] for n in sorted(self._by_name)]

    def __len__(self) -> int:
        return len(self._by_name)


#: Every trigger defined with ``@trigger`` in this process.
trigger_catalog = TriggerCatalog()


def trigger(
    workflow: str,
    poll_interval: float | timedelta,
    *,
    allow_concurrent: bool = False,
    name: str | None = None,
) -> Callable[[F], F]:
    """Declare a trigger: call the decorated function every ``poll_interval`` (seconds or a
    timedelta); a dict it returns starts a run of ``workflow`` with that context, ``None``
    starts nothing.

    While a run started with the same context (compared as canonical JSON) is still running
    or paused, the same context starts nothing, unless ``allow_concurrent``. ``name``
    defaults to the function's qualified name; it is the trigger's identity in the database
    (``cloacina triggers pause NAME``). Checked at once: a bad interval, name or signature
    raises :class:`~cloacina.errors.WorkflowDefinitionError`.
    """

    def decorate(fn: F) -> F:
        trig = make_trigger(
            fn,
            workflow=workflow,
            poll_interval=poll_interval,
            allow_concurrent=allow_concurrent,
            name=name,
        )
        trigger_catalog.add(trig)
        fn.__cloacina_trigger__ = trig  # type: ignore[attr-defined]
        return fn

    return decorate


def trigger_of(obj: object) -> Trigger:
    """The :class:`Trigger` a ``@trigger`` function declared."""
    if isinstance(obj, Trigger):
        return obj
    found = getattr(obj, "__cloacina_trigger__", None)
    if isinstance(found, Trigger):
        return found
    raise WorkflowDefinitionError(f"{obj!r} is not a @trigger function")
