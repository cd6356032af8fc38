"""cloaca's ``@trigger`` decorator and ``TriggerResult``.

cloaca's embedded runner does not poll ``@cloaca.trigger`` functions (only its package
loader does), so the definitions are kept here and never handed to Cloacina's trigger
catalog, which a runner polls. Cloacina's own ``@cloacina.trigger`` is the polled form.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cloacina.compat.cloaca.context import Context

F = TypeVar("F", bound=Callable[..., Any])
_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class TriggerResult:
    """What a trigger poll returns: ``TriggerResult.skip()`` or ``TriggerResult.fire(ctx)``."""

    __slots__ = ("_context", "_fire")
    _context: Context | None
    _fire: bool

    def __init__(self) -> None:
        raise TypeError("TriggerResult has no constructor: use TriggerResult.skip() or .fire()")

    @classmethod
    def _make(cls, fire: bool, context: Context | None) -> TriggerResult:
        result = object.__new__(cls)
        result._fire = fire
        result._context = context
        return result

    @staticmethod
    def skip() -> TriggerResult:
        return TriggerResult._make(False, None)

    @staticmethod
    def fire(context: Context | None = None) -> TriggerResult:
        if context is not None and not isinstance(context, Context):
            raise TypeError(
                f"TriggerResult.fire takes a cloaca.Context, not {type(context).__name__}"
            )
        return TriggerResult._make(True, context)

    def is_fire_result(self) -> bool:
        return self._fire

    def is_skip_result(self) -> bool:
        return not self._fire

    @property
    def context(self) -> Context | None:
        return self._context

    def __repr__(self) -> str:
        if not self._fire:
            return "TriggerResult.Skip"
        return f"TriggerResult.Fire({'None' if self._context is None else repr(self._context)})"


@dataclass(frozen=True)
class TriggerDefinition:
    """A ``@cloaca.trigger`` function as declared."""

    name: str
    fn: Callable[[], Any]
    poll_interval: float
    allow_concurrent: bool
    workflow: str | None
    cron: str | None
    timezone: str | None


_lock = threading.Lock()
#: Every ``@cloaca.trigger`` declared in this process, by name.
definitions: dict[str, TriggerDefinition] = {}


def parse_interval(text: str) -> float:
    """``"100ms"``, ``"5s"``, ``"2m"``, ``"1h"`` in seconds."""
    match = _INTERVAL.match(str(text))
    if match is None:
        raise ValueError(
            f"Invalid poll_interval '{text}': expected a whole number followed by ms, s, m or h "
            "(e.g. '100ms', '30s')"
        )
    return int(match.group(1)) * _UNIT[match.group(2)]


def trigger(
    *,
    name: str | None = None,
    on: str | None = None,
    poll_interval: str | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    allow_concurrent: bool = False,
) -> Callable[[F], F]:
    """Declare a trigger poll function; the function is returned unchanged."""
    if cron is not None and poll_interval is not None:
        raise ValueError("@trigger: give cron= or poll_interval=, not both")
    if cron is not None and on is None:
        raise ValueError("@trigger(cron=...) needs on= (the workflow it starts)")
    seconds = parse_interval(poll_interval if poll_interval is not None else "30s")

    def decorate(fn: F) -> F:
        label = name or fn.__name__
        with _lock:
            definitions[label] = TriggerDefinition(
                label, fn, seconds, bool(allow_concurrent), on, cron, timezone
            )
        return fn

    return decorate
