"""Retry policies: how many attempts a task gets and how long to wait between them."""

from __future__ import annotations

import builtins
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Backoff = Literal["exponential", "linear", "fixed"]
_BACKOFFS = ("exponential", "linear", "fixed")
#: What ``retry_on`` accepts: one exception class or several (a tuple, list, ...).
RetryOn = type[BaseException] | Iterable[type[BaseException]]


@dataclass(frozen=True, init=False)
class RetryPolicy:
    """How a failed task is retried.

    Attempt ``n`` (1-based, the attempt that failed) waits ``initial_delay * 2**(n-1)``
    (exponential), ``initial_delay * n`` (linear) or ``initial_delay`` (fixed), jittered by up to
    ±25 % when ``jitter`` is set, then capped at ``max_delay``. A ``TaskError(retryable=False)``
    or an exception that is not an instance of one of ``retry_on`` fails the task at once.
    ``retry_on`` takes one exception class or several (stored as a tuple).
    """

    max_attempts: int
    backoff: Backoff
    initial_delay: float
    max_delay: float
    jitter: bool
    retry_on: tuple[type[BaseException], ...]

    def __init__(
        self,
        max_attempts: int = 3,
        backoff: Backoff = "exponential",
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
        jitter: bool = True,
        retry_on: RetryOn = (Exception,),
    ) -> None:
        # An explicit __init__ (not the dataclass one) so that the type of ``retry_on`` can
        # say a single class is accepted while the attribute is always a tuple.
        set_ = object.__setattr__
        set_(self, "max_attempts", max_attempts)
        set_(self, "backoff", backoff)
        set_(self, "initial_delay", initial_delay)
        set_(self, "max_delay", max_delay)
        set_(self, "jitter", jitter)
        set_(self, "retry_on", _exception_types(retry_on))
        self._validate()

    def _validate(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValueError(
                f"RetryPolicy.max_attempts must be a whole number >= 1, got {self.max_attempts!r}"
            )
        if self.backoff not in _BACKOFFS:
            raise ValueError(
                f"RetryPolicy.backoff must be one of {', '.join(_BACKOFFS)}, got {self.backoff!r}"
            )
        for label in ("initial_delay", "max_delay"):
            value = getattr(self, label)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"RetryPolicy.{label} must be a finite number of seconds >= 0, got {value!r}"
                )

    def delay_for(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
        n = max(1, attempt)
        if self.backoff == "exponential":
            base = self.initial_delay * (2 ** min(n - 1, 62))
        elif self.backoff == "linear":
            base = self.initial_delay * n
        else:
            base = self.initial_delay
        if self.jitter and base > 0:
            base *= (rng or random).uniform(0.75, 1.25)
        return float(min(base, self.max_delay))

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether a task that raised ``exc`` on attempt ``attempt`` gets another attempt."""
        return attempt < self.max_attempts and self.retries_on(exc)

    def retries_on(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a failure this policy retries (attempts aside)."""
        from cloacina.errors import RemoteTaskError, TaskError, TaskTimeoutError

        if isinstance(exc, TaskTimeoutError):
            return True  # a timeout is always a retryable failure, whatever retry_on says
        if isinstance(exc, RemoteTaskError):
            return exc.retryable  # classified where the exception happened
        if isinstance(exc, TaskError) and not exc.retryable:
            return False
        return isinstance(exc, self.retry_on)

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description (stored in manifests and used for the version hash)."""
        return {
            "max_attempts": self.max_attempts,
            "backoff": self.backoff,
            "initial_delay": self.initial_delay,
            "max_delay": self.max_delay,
            "jitter": self.jitter,
            "retry_on": [f"{t.__module__}.{t.__qualname__}" for t in self.retry_on],
        }


def _exception_types(retry_on: object) -> tuple[type[BaseException], ...]:
    """``retry_on`` as a tuple of exception classes; a clear error for anything else (a
    string would otherwise be taken apart into its characters)."""
    if isinstance(retry_on, str | bytes):
        name = retry_on.decode(errors="replace") if isinstance(retry_on, bytes) else retry_on
        known = getattr(builtins, name, None)
        hint = (
            f"retry_on={name}"
            if isinstance(known, type) and issubclass(known, BaseException)
            else "retry_on=SomeError"
        )
        raise ValueError(
            f"RetryPolicy.retry_on takes exception classes, not the string {retry_on!r}: "
            f"write {hint} (or a tuple of classes, such as retry_on=(ValueError, KeyError))"
        )
    if isinstance(retry_on, type):
        types: tuple[object, ...] = (retry_on,)
    else:
        try:
            types = tuple(retry_on)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(
                "RetryPolicy.retry_on must be an exception class or a tuple of them, "
                f"got {retry_on!r}"
            ) from None
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            hint = (
                " (a string: give the class itself, without quotes)" if isinstance(t, str) else ""
            )
            raise ValueError(f"RetryPolicy.retry_on must hold exception classes, got {t!r}{hint}")
    return types  # type: ignore[return-value]


NO_RETRY = RetryPolicy(max_attempts=1, initial_delay=0.0, jitter=False)
