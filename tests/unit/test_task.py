"""The @task decorator: ids, dependencies, direct calls, async detection and validation."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from cloacina import Context, RetryPolicy, Task, WorkflowDefinitionError, task
from cloacina.model.retry import NO_RETRY
from cloacina.model.rules import Combined, StatusRule, context_value


def test_id_defaults_to_the_function_name() -> None:
    @task
    def load_rows(ctx: Context) -> None:
        pass

    @task()
    def other(ctx: Context) -> None:
        pass

    assert isinstance(load_rows, Task)
    assert load_rows.id == "load_rows"
    assert other.id == "other"


def test_explicit_id_is_used() -> None:
    @task(id="custom")
    def fn(ctx: Context) -> None:
        pass

    assert fn.id == "custom"
    # the wrapper keeps the function's own metadata (functools.update_wrapper sets __name__
    # at run time; Task does not declare it)
    assert fn.__name__ == "fn"  # type: ignore[attr-defined]


def test_wrapper_keeps_function_metadata_and_description() -> None:
    def body(ctx: Context) -> None:
        """Loads the rows."""

    t = task(body)
    assert t.__name__ == "body"  # type: ignore[attr-defined]  # set by update_wrapper
    assert t.__doc__ == "Loads the rows."
    assert t.__wrapped__ is body  # type: ignore[attr-defined]
    assert t.func is body
    assert t.description == "Loads the rows."
    assert task(description="explicit")(body).description == "explicit"


def test_defaults() -> None:
    @task
    def t(ctx: Context) -> None:
        pass

    assert t.dependencies == ()
    assert t.retry is NO_RETRY
    assert t.retry.max_attempts == 1
    assert t.timeout is None
    assert t.trigger_rule == StatusRule("all_success")
    assert t.is_async is False


def test_dependencies_as_ids_task_objects_or_functions() -> None:
    @task
    def first(ctx: Context) -> None:
        pass

    @task(id="second_id")
    def second(ctx: Context) -> None:
        pass

    def plain(ctx: Context) -> None:
        pass

    @task(dependencies=["by_id", first, second, plain])
    def last(ctx: Context) -> None:
        pass

    # a Task contributes its id (not its function name); a plain function its __name__
    assert last.dependencies == ("by_id", "first", "second_id", "plain")


def test_single_dependency_is_not_iterated() -> None:
    @task
    def up(ctx: Context) -> None:
        pass

    @task(dependencies="upstream")  # a str is Iterable[str], but must not be iterated
    def by_str(ctx: Context) -> None:
        pass

    # a lone Task, not an iterable (the failed overload match also leaves the decorator untyped)
    @task(dependencies=up)  # type: ignore[call-overload, untyped-decorator]
    def by_task(ctx: Context) -> None:
        pass

    assert by_str.dependencies == ("upstream",)
    assert by_task.dependencies == ("up",)


def test_dependencies_accept_any_iterable() -> None:
    t = task(dependencies=(d for d in ("a", "b")))(lambda ctx: None)
    assert t.dependencies == ("a", "b")


def test_bad_dependency_type_names_the_task() -> None:
    with pytest.raises(WorkflowDefinitionError) as info:

        @task(dependencies=[42])  # type: ignore[list-item]
        def needs_number(ctx: Context) -> None:
            pass

    assert "'needs_number'" in str(info.value)
    assert "42" in str(info.value)


def test_task_is_callable_directly_with_a_context() -> None:
    @task(dependencies=["upstream"])
    def double(ctx: Context) -> int:
        ctx.insert("doubled", ctx["value"] * 2)
        return 7

    ctx = Context({"value": 21})
    assert double(ctx) == 7
    assert ctx["doubled"] == 42


def test_task_returning_a_dict_returns_it_unchanged() -> None:
    @task
    def produce(ctx: Context) -> dict[str, Any]:
        return {"out": 1}

    assert produce(Context()) == {"out": 1}


def test_async_task_is_detected_and_callable() -> None:
    @task
    async def fetch(ctx: Context) -> None:
        await asyncio.sleep(0)
        ctx.insert("fetched", True)

    @task
    def sync(ctx: Context) -> None:
        pass

    assert fetch.is_async is True
    assert sync.is_async is False
    ctx = Context()
    asyncio.run(fetch(ctx))
    assert ctx["fetched"] is True


def test_function_without_positional_parameter_is_rejected_naming_the_task() -> None:
    with pytest.raises(WorkflowDefinitionError) as info:

        @task
        def no_args() -> None:
            pass

    message = str(info.value)
    assert "'no_args'" in message
    assert "positional" in message
    assert "def no_args(context: Context) -> None" in message


def test_keyword_only_parameters_do_not_count_as_the_context() -> None:
    with pytest.raises(WorkflowDefinitionError, match="positional"):

        @task
        def kw_only(*, ctx: Context) -> None:
            pass

    with pytest.raises(WorkflowDefinitionError, match="positional"):

        @task
        def kwargs_only(**kwargs: Any) -> None:
            pass


def test_signature_error_uses_the_explicit_id() -> None:
    with pytest.raises(WorkflowDefinitionError) as info:

        @task(id="the_id")
        def fn() -> None:
            pass

    assert "'the_id'" in str(info.value)


def test_extra_required_parameters_are_rejected_and_named() -> None:
    with pytest.raises(WorkflowDefinitionError) as info:

        @task
        def greedy(ctx: Context, extra: int, *, flag: bool) -> None:
            pass

    message = str(info.value)
    assert "'greedy'" in message
    assert "extra" in message
    assert "flag" in message


def test_optional_extra_parameters_and_varargs_are_fine() -> None:
    @task
    def optional(ctx: Context, extra: int = 1, *, flag: bool = False) -> None:
        pass

    @task
    def star(*args: Any) -> None:
        pass

    @task
    def pos_only(ctx: Context, /) -> None:
        pass

    assert optional.id == "optional"
    assert star.id == "star"
    assert pos_only.id == "pos_only"


def test_non_callable_is_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError, match="needs a function"):
        Task(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, -0.5, "10", [1]])
def test_bad_timeout_is_rejected_naming_the_task(bad: Any) -> None:
    with pytest.raises(WorkflowDefinitionError) as info:

        @task(timeout=bad)
        def slow(ctx: Context) -> None:
            pass

    assert "'slow'" in str(info.value)
    assert "timeout" in str(info.value)


def test_good_timeout_is_stored_as_float() -> None:
    @task(timeout=30)
    def t(ctx: Context) -> None:
        pass

    assert t.timeout == 30.0
    assert isinstance(t.timeout, float)
    assert task(timeout=0.25)(lambda ctx: None).timeout == 0.25


def test_nan_timeout_is_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError):
        task(timeout=math.nan)(lambda ctx: None)


@pytest.mark.parametrize("bad", [3, {"max_attempts": 3}, "exponential", RetryPolicy])
def test_bad_retry_type_is_rejected_naming_the_task(bad: Any) -> None:
    with pytest.raises(WorkflowDefinitionError) as info:

        @task(retry=bad)
        def flaky(ctx: Context) -> None:
            pass

    assert "'flaky'" in str(info.value)
    assert "RetryPolicy" in str(info.value)


def test_retry_policy_is_kept() -> None:
    policy = RetryPolicy(max_attempts=5, backoff="linear")

    @task(retry=policy)
    def flaky(ctx: Context) -> None:
        pass

    assert flaky.retry is policy


def test_trigger_rule_by_name_and_condition_wrapping() -> None:
    @task(trigger_rule="all_done")
    def cleanup(ctx: Context) -> None:
        pass

    cond = context_value("go", "==", True)

    @task(trigger_rule=cond)
    def gated(ctx: Context) -> None:
        pass

    assert cleanup.trigger_rule == StatusRule("all_done")
    # a bare condition gets the default status rule in front of it
    assert gated.trigger_rule == Combined("all_of", (StatusRule("all_success"), cond))


def test_bad_trigger_rule_is_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError, match="unknown trigger rule"):
        task(trigger_rule="sometimes")(lambda ctx: None)
    with pytest.raises(WorkflowDefinitionError, match="trigger_rule"):
        task(trigger_rule=3)(lambda ctx: None)  # type: ignore[call-overload]  # wrong type on purpose


def test_repr_names_id_and_dependencies() -> None:
    t = task(id="x", dependencies=["a", "b"])(lambda ctx: None)
    assert repr(t) == "<Task 'x' deps=[a, b]>"
