"""cloaca's retry value objects, and their translation to :class:`cloacina.RetryPolicy`.

cloaca decides whether to retry from the failed attempt's message (``RetryCondition``);
Cloacina from the exception. The task wrapper (``tasks.py``) asks :meth:`RetryPolicy.matches`
and raises ``TaskError(retryable=False)`` when the condition says no.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from cloacina.model.retry import RetryPolicy as _Policy

_TRANSIENT = (
    "connection",
    "network",
    "timeout",
    "temporary",
    "unavailable",
    "busy",
    "overloaded",
    "rate limit",
)


def _num(value: float) -> str:
    return f"{value:g}"


class BackoffStrategy:
    """How the delay between attempts grows: ``fixed()``, ``linear(m)``,
    ``exponential(base, multiplier=1.0)``."""

    __slots__ = ("base", "kind", "multiplier")

    def __init__(self, kind: str, base: float = 2.0, multiplier: float = 1.0) -> None:
        self.kind = kind
        self.base = float(base)
        self.multiplier = float(multiplier)

    @staticmethod
    def fixed() -> BackoffStrategy:
        return BackoffStrategy("fixed")

    @staticmethod
    def linear(multiplier: float) -> BackoffStrategy:
        return BackoffStrategy("linear", multiplier=multiplier)

    @staticmethod
    def exponential(base: float, multiplier: float = 1.0) -> BackoffStrategy:
        return BackoffStrategy("exponential", base=base, multiplier=multiplier)

    def delay(self, initial: float, attempt: int) -> float:
        """The delay after failed attempt ``attempt`` (1-based), before cap and jitter."""
        if self.kind == "fixed":
            return initial
        if self.kind == "linear":
            return initial * attempt * self.multiplier
        return initial * self.multiplier * self.base ** min(max(attempt - 1, 0), 1000)

    def __repr__(self) -> str:
        if self.kind == "fixed":
            return "BackoffStrategy.Fixed"
        if self.kind == "linear":
            return f"BackoffStrategy.Linear(multiplier={_num(self.multiplier)})"
        return (
            f"BackoffStrategy.Exponential(base={_num(self.base)}, "
            f"multiplier={_num(self.multiplier)})"
        )


class RetryCondition:
    """Which failures are retried: ``never()``, ``transient_only()``, ``all_errors()``,
    ``error_pattern([...])`` (a case-insensitive substring of the error message)."""

    __slots__ = ("kind", "patterns")

    def __init__(self, kind: str, patterns: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.patterns = patterns

    @staticmethod
    def never() -> RetryCondition:
        return RetryCondition("never")

    @staticmethod
    def transient_only() -> RetryCondition:
        return RetryCondition("transient")

    @staticmethod
    def all_errors() -> RetryCondition:
        return RetryCondition("all")

    @staticmethod
    def error_pattern(patterns: list[str]) -> RetryCondition:
        return RetryCondition("pattern", tuple(str(p) for p in patterns))

    def matches(self, message: str) -> bool:
        """Whether a failure with ``message`` is retried (attempts aside)."""
        text = message.lower()
        if self.kind == "never":
            return False
        if self.kind == "transient":
            return any(word in text for word in _TRANSIENT)
        if self.kind == "pattern":
            return any(p.lower() in text for p in self.patterns)
        return True

    def __repr__(self) -> str:
        names = {"never": "Never", "transient": "TransientOnly", "all": "AllErrors"}
        if self.kind == "pattern":
            return f"RetryCondition.ErrorPattern(patterns={list(self.patterns)!r})".replace(
                "'", '"'
            )
        return f"RetryCondition.{names[self.kind]}"


_EXPONENTIAL = BackoffStrategy("exponential")
_ALL_ERRORS = RetryCondition("all")


@dataclass(frozen=True)
class _Fields:
    max_attempts: int = 3
    initial_delay: float = 1.0
    max_delay: float = 60.0
    backoff: BackoffStrategy = _EXPONENTIAL
    condition: RetryCondition = _ALL_ERRORS
    jitter: bool = True


class RetryPolicy:
    """cloaca's retry policy: ``RetryPolicy.builder()...build()`` or ``RetryPolicy.default()``
    (3 attempts, exponential from 1 s, at most 60 s, jitter, every error)."""

    __slots__ = ("_f",)
    _f: _Fields

    def __init__(self) -> None:
        raise TypeError("RetryPolicy has no constructor: use RetryPolicy.builder() or .default()")

    @classmethod
    def _of(cls, fields: _Fields) -> RetryPolicy:
        policy = object.__new__(cls)
        object.__setattr__(policy, "_f", fields)
        return policy

    @staticmethod
    def builder() -> RetryPolicyBuilder:
        return RetryPolicyBuilder._of(_Fields())

    @staticmethod
    def default() -> RetryPolicy:
        return RetryPolicy._of(_Fields())

    @property
    def max_attempts(self) -> int:
        return self._f.max_attempts

    @property
    def initial_delay(self) -> float:
        return self._f.initial_delay

    @property
    def max_delay(self) -> float:
        return self._f.max_delay

    @property
    def with_jitter(self) -> bool:
        return self._f.jitter

    @property
    def backoff_strategy(self) -> BackoffStrategy:
        return self._f.backoff

    @property
    def retry_condition(self) -> RetryCondition:
        return self._f.condition

    def calculate_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (capped, then jittered ±25 %)."""
        f = self._f
        delay = min(f.backoff.delay(f.initial_delay, attempt), f.max_delay)
        if f.jitter:
            delay *= random.uniform(0.75, 1.25)
        return float(delay)

    def should_retry(self, attempt: int, error_type: str = "") -> bool:
        return attempt < self._f.max_attempts

    def matches(self, message: str) -> bool:
        """Whether this policy's condition retries a failure with ``message``."""
        return self._f.condition.matches(message)

    def to_cloacina(self) -> _Policy:
        """The :class:`cloacina.RetryPolicy` the engine runs: attempts, delays and jitter.

        Cloacina's exponential backoff doubles: a base other than 2 is approximated by 2; a
        multiplier scales the initial delay.
        """
        f = self._f
        b = f.backoff
        initial = f.initial_delay if b.kind == "fixed" else f.initial_delay * b.multiplier
        return _Policy(
            max_attempts=max(1, f.max_attempts),
            backoff="linear"
            if b.kind == "linear"
            else "fixed"
            if b.kind == "fixed"
            else "exponential",
            initial_delay=max(0.0, initial),
            max_delay=max(0.0, f.max_delay),
            jitter=f.jitter,
        )

    def __repr__(self) -> str:
        f = self._f
        return (
            f"RetryPolicy(max_attempts={f.max_attempts}, initial_delay={_num(f.initial_delay)}s, "
            f"max_delay={_num(f.max_delay)}s, jitter={str(f.jitter).lower()})"
        )


class RetryPolicyBuilder:
    """An immutable builder: each method returns a new builder."""

    __slots__ = ("_f",)
    _f: _Fields

    def __init__(self) -> None:
        object.__setattr__(self, "_f", _Fields())

    @classmethod
    def _of(cls, fields: _Fields) -> RetryPolicyBuilder:
        builder = object.__new__(cls)
        object.__setattr__(builder, "_f", fields)
        return builder

    def _with(self, **changes: Any) -> RetryPolicyBuilder:
        return RetryPolicyBuilder._of(replace(self._f, **changes))

    def max_attempts(self, n: int) -> RetryPolicyBuilder:
        return self._with(max_attempts=int(n))

    def initial_delay(self, seconds: float) -> RetryPolicyBuilder:
        return self._with(initial_delay=float(seconds))

    def max_delay(self, seconds: float) -> RetryPolicyBuilder:
        return self._with(max_delay=float(seconds))

    def backoff_strategy(self, strategy: BackoffStrategy) -> RetryPolicyBuilder:
        return self._with(backoff=strategy)

    def retry_condition(self, condition: RetryCondition) -> RetryPolicyBuilder:
        return self._with(condition=condition)

    def with_jitter(self, jitter: bool) -> RetryPolicyBuilder:
        return self._with(jitter=bool(jitter))

    def build(self) -> RetryPolicy:
        return RetryPolicy._of(self._f)


def policy_from_keywords(
    attempts: int | None,
    backoff: str | None,
    delay_ms: int | None,
    max_delay_ms: int | None,
    condition: str | None,
    jitter: bool | None,
) -> RetryPolicy:
    """The policy of ``@task(retry_attempts=..., retry_backoff=..., ...)``: the default with
    what was given."""
    f = _Fields()
    if attempts is not None:
        f = replace(f, max_attempts=int(attempts))
    if backoff is not None:
        strategy = {
            "linear": BackoffStrategy.linear(1.0),
            "exponential": BackoffStrategy.exponential(2.0, 1.0),
        }.get(backoff, BackoffStrategy.fixed())
        f = replace(f, backoff=strategy)
    if delay_ms is not None:
        f = replace(f, initial_delay=delay_ms / 1000.0)
    if max_delay_ms is not None:
        f = replace(f, max_delay=max_delay_ms / 1000.0)
    if condition is not None:
        f = replace(
            f,
            condition={
                "never": RetryCondition.never(),
                "transient": RetryCondition.transient_only(),
            }.get(condition, RetryCondition.all_errors()),
        )
    if jitter is not None:
        f = replace(f, jitter=bool(jitter))
    return RetryPolicy._of(f)
