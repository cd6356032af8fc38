"""RetryPolicy: backoff delays, jitter, the max_delay cap, should_retry and validation."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from typing import Any

import pytest

from cloacina import RetryPolicy, TaskError, TaskTimeoutError
from cloacina.model.retry import NO_RETRY


def test_defaults_match_the_design() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert policy.backoff == "exponential"
    assert policy.initial_delay == 1.0
    assert policy.max_delay == 60.0
    assert policy.jitter is True
    assert policy.retry_on == (Exception,)


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("exponential", [0.5, 1.0, 2.0, 4.0, 8.0]),
        ("linear", [0.5, 1.0, 1.5, 2.0, 2.5]),
        ("fixed", [0.5, 0.5, 0.5, 0.5, 0.5]),
    ],
)
def test_delay_for_without_jitter(backoff: Any, expected: list[float]) -> None:
    policy = RetryPolicy(backoff=backoff, initial_delay=0.5, jitter=False)
    assert [policy.delay_for(n) for n in range(1, 6)] == expected


@pytest.mark.parametrize("backoff", ["exponential", "linear", "fixed"])
def test_delay_is_capped_at_max_delay(backoff: Any) -> None:
    policy = RetryPolicy(backoff=backoff, initial_delay=10.0, max_delay=25.0, jitter=False)
    assert all(policy.delay_for(n) <= 25.0 for n in range(1, 50))
    assert policy.delay_for(49) == (10.0 if backoff == "fixed" else 25.0)


def test_exponential_delay_of_a_huge_attempt_does_not_overflow() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=60.0)
    assert policy.delay_for(10_000) == 60.0
    assert policy.delay_for(10**9, random.Random(1)) == 60.0


def test_attempt_below_one_is_treated_as_the_first() -> None:
    policy = RetryPolicy(initial_delay=2.0, jitter=False)
    assert policy.delay_for(0) == policy.delay_for(-5) == policy.delay_for(1) == 2.0


@pytest.mark.parametrize("backoff", ["exponential", "linear", "fixed"])
def test_jitter_stays_within_a_quarter_of_the_base(backoff: Any) -> None:
    rng = random.Random(1234)
    jittered = RetryPolicy(backoff=backoff, initial_delay=2.0, max_delay=1e9)
    plain = dataclasses.replace(jittered, jitter=False)
    for attempt in range(1, 8):
        base = plain.delay_for(attempt)
        samples = [jittered.delay_for(attempt, rng) for _ in range(200)]
        assert all(0.75 * base <= s <= 1.25 * base for s in samples)
        assert len(set(samples)) > 1  # it does vary
        # both halves of the band are used
        assert min(samples) < base < max(samples)


def test_cap_holds_after_jitter() -> None:
    rng = random.Random(7)
    policy = RetryPolicy(backoff="fixed", initial_delay=10.0, max_delay=10.0)
    samples = [policy.delay_for(1, rng) for _ in range(500)]
    assert max(samples) == 10.0
    assert min(samples) >= 7.5


def test_zero_initial_delay_is_zero_even_with_jitter() -> None:
    policy = RetryPolicy(initial_delay=0.0)
    assert all(policy.delay_for(n) == 0.0 for n in range(1, 10))


def test_jitter_uses_the_given_rng_reproducibly() -> None:
    policy = RetryPolicy()
    first = [policy.delay_for(n, random.Random(42)) for n in range(1, 5)]
    second = [policy.delay_for(n, random.Random(42)) for n in range(1, 5)]
    assert first == second


def test_should_retry_until_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    exc = RuntimeError("boom")
    assert policy.should_retry(exc, 1)
    assert policy.should_retry(exc, 2)
    assert not policy.should_retry(exc, 3)
    assert not policy.should_retry(exc, 4)


def test_single_attempt_policy_never_retries() -> None:
    assert not RetryPolicy(max_attempts=1).should_retry(RuntimeError(), 1)
    assert not NO_RETRY.should_retry(RuntimeError(), 1)
    assert NO_RETRY.delay_for(1) == 0.0


def test_should_retry_respects_retry_on() -> None:
    policy = RetryPolicy(max_attempts=5, retry_on=(ConnectionError, TimeoutError))
    assert policy.should_retry(ConnectionError(), 1)
    assert policy.should_retry(ConnectionResetError(), 1)  # subclasses count
    assert policy.should_retry(TimeoutError(), 1)
    assert not policy.should_retry(ValueError(), 1)
    assert not policy.should_retry(KeyboardInterrupt(), 1)


def test_default_retry_on_does_not_retry_base_exceptions() -> None:
    assert not RetryPolicy().should_retry(KeyboardInterrupt(), 1)
    assert RetryPolicy().should_retry(TaskTimeoutError("slow"), 1)


def test_retry_on_single_type_is_normalised_to_a_tuple() -> None:
    policy = RetryPolicy(retry_on=ValueError)
    assert policy.retry_on == (ValueError,)
    assert policy.should_retry(ValueError(), 1)
    assert RetryPolicy(retry_on=[KeyError, IndexError]).retry_on == (KeyError, IndexError)
    assert policy == RetryPolicy(retry_on=(ValueError,))
    assert dataclasses.replace(policy, max_attempts=2).retry_on == (ValueError,)


def test_task_error_retryable_flag() -> None:
    policy = RetryPolicy(max_attempts=5)
    assert policy.should_retry(TaskError("transient"), 1)
    assert not policy.should_retry(TaskError("permanent", retryable=False), 1)
    err = TaskError("msg", retryable=False)
    assert err.message == "msg"
    assert str(err) == "msg"


def test_non_retryable_task_error_fails_even_when_listed_in_retry_on() -> None:
    policy = RetryPolicy(max_attempts=5, retry_on=(TaskError,))
    assert not policy.should_retry(TaskError("no", retryable=False), 1)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -3}, "max_attempts"),
        ({"backoff": "quadratic"}, "backoff"),
        ({"initial_delay": -1.0}, "initial_delay"),
        ({"max_delay": -0.1}, "max_delay"),
    ],
)
def test_validation_errors(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RetryPolicy(**kwargs)


def test_policy_is_frozen_and_hashable() -> None:
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 10  # type: ignore[misc]
    assert hash(policy) == hash(RetryPolicy())
    assert policy == RetryPolicy()


def test_describe_is_json_friendly() -> None:
    described = RetryPolicy(retry_on=(ConnectionError,)).describe()
    assert json.loads(json.dumps(described)) == described
    assert described["retry_on"] == ["builtins.ConnectionError"]
    assert described["backoff"] == "exponential"


@pytest.mark.parametrize("field", ["initial_delay", "max_delay"])
def test_nan_delays_are_rejected(field: str) -> None:
    with pytest.raises(ValueError):
        kwargs: dict[str, Any] = {field: math.nan}
        RetryPolicy(**kwargs)


def test_retry_on_must_hold_exception_types() -> None:
    with pytest.raises((ValueError, TypeError)):
        RetryPolicy(retry_on=("ValueError",))  # type: ignore[arg-type]


def test_timeout_is_retryable_whatever_retry_on_says() -> None:
    policy = RetryPolicy(max_attempts=3, retry_on=(ConnectionError,))
    assert policy.should_retry(TaskTimeoutError("too slow"), 1)


def test_retry_on_a_string_is_refused_with_the_fix() -> None:
    # Regression: a string was taken apart into its characters ("got 'V'").
    with pytest.raises(ValueError) as info:
        RetryPolicy(retry_on="ValueError")  # type: ignore[arg-type]
    message = str(info.value)
    assert "not the string 'ValueError'" in message
    assert "retry_on=ValueError" in message
    assert "'V'" not in message
    with pytest.raises(ValueError, match="retry_on=SomeError"):
        RetryPolicy(retry_on="MyAppError")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [42, None, (ValueError, 3), [ValueError, "KeyError"], (int,)])
def test_retry_on_refuses_what_is_not_exception_classes(bad: Any) -> None:
    with pytest.raises(ValueError, match="retry_on"):
        RetryPolicy(retry_on=bad)
