"""Trigger rules: status rules, context conditions, combinators and coercion."""

from __future__ import annotations

from typing import Any

import pytest

import cloacina.rules as public_rules
from cloacina import WorkflowDefinitionError
from cloacina.model.rules import (
    Combined,
    ContextCondition,
    DepCounts,
    StatusRule,
    TriggerRule,
    Verdict,
    all_done,
    all_of,
    all_success,
    any_of,
    coerce_rule,
    context_value,
    none_failed,
    none_of,
    one_failed,
    with_default_status,
)

RUN, SKIP, WAIT, NEEDS = Verdict.RUN, Verdict.SKIP, Verdict.WAIT, Verdict.NEEDS_CONTEXT


def counts(total: int = 3, remaining: int = 0, failed: int = 0, skipped: int = 0) -> DepCounts:
    return DepCounts(total=total, remaining=remaining, failed=failed, skipped=skipped)


ALL_COMPLETED = counts()
PENDING = counts(remaining=2)
PENDING_ONE_FAILED = counts(remaining=1, failed=1)
PENDING_ONE_SKIPPED = counts(remaining=1, skipped=1)
DONE_ONE_FAILED = counts(failed=1)
DONE_ONE_SKIPPED = counts(skipped=1)
DONE_ALL_FAILED = counts(failed=3)
NO_DEPS = counts(total=0)


def test_dep_counts_completed() -> None:
    assert counts(total=5, remaining=1, failed=1, skipped=1).completed == 2
    assert NO_DEPS.completed == 0


@pytest.mark.parametrize(
    ("rule", "deps", "expected"),
    [
        # all_success: every dependency completed; any failure or skip skips at once
        (all_success(), ALL_COMPLETED, RUN),
        (all_success(), NO_DEPS, RUN),
        (all_success(), PENDING, WAIT),
        (all_success(), PENDING_ONE_FAILED, SKIP),
        (all_success(), PENDING_ONE_SKIPPED, SKIP),
        (all_success(), DONE_ONE_FAILED, SKIP),
        (all_success(), DONE_ONE_SKIPPED, SKIP),
        # all_done: run once all are terminal, whatever the outcome
        (all_done(), ALL_COMPLETED, RUN),
        (all_done(), NO_DEPS, RUN),
        (all_done(), PENDING, WAIT),
        (all_done(), PENDING_ONE_FAILED, WAIT),
        (all_done(), DONE_ONE_FAILED, RUN),
        (all_done(), DONE_ALL_FAILED, RUN),
        (all_done(), DONE_ONE_SKIPPED, RUN),
        # one_failed: once all finished, run if one failed, skip if none did
        (one_failed(), PENDING_ONE_FAILED, WAIT),
        (one_failed(), DONE_ONE_FAILED, RUN),
        (one_failed(), PENDING, WAIT),
        (one_failed(), PENDING_ONE_SKIPPED, WAIT),
        (one_failed(), ALL_COMPLETED, SKIP),
        (one_failed(), DONE_ONE_SKIPPED, SKIP),
        (one_failed(), NO_DEPS, SKIP),
        # none_failed: all finished, none failed (skips are fine)
        (none_failed(), ALL_COMPLETED, RUN),
        (none_failed(), DONE_ONE_SKIPPED, RUN),
        (none_failed(), NO_DEPS, RUN),
        (none_failed(), PENDING, WAIT),
        (none_failed(), PENDING_ONE_SKIPPED, WAIT),
        (none_failed(), PENDING_ONE_FAILED, SKIP),
        (none_failed(), DONE_ONE_FAILED, SKIP),
    ],
)
def test_status_rule_verdicts(rule: TriggerRule, deps: DepCounts, expected: Verdict) -> None:
    assert rule.evaluate(deps) is expected
    # a context changes nothing for a pure status rule
    assert rule.evaluate(deps, {"anything": 1}) is expected


@pytest.mark.parametrize(
    ("op", "value", "context", "holds"),
    [
        ("==", 3, {"k": 3}, True),
        ("==", 3, {"k": 4}, False),
        ("==", "a", {"k": "a"}, True),
        ("==", {"x": [1]}, {"k": {"x": [1]}}, True),
        ("!=", 3, {"k": 4}, True),
        ("!=", 3, {"k": 3}, False),
        (">", 3, {"k": 4}, True),
        (">", 3, {"k": 3}, False),
        ("<", 3, {"k": 2}, True),
        ("<", 3, {"k": 3}, False),
        (">=", 3, {"k": 3}, True),
        (">=", 3, {"k": 2}, False),
        ("<=", 3, {"k": 3}, True),
        ("<=", 3, {"k": 4}, False),
        ("in", ["a", "b"], {"k": "a"}, True),
        ("in", ["a", "b"], {"k": "c"}, False),
        ("in", "abc", {"k": "b"}, True),
        ("in", {1, 2}, {"k": 2}, True),
        ("not_in", ["a", "b"], {"k": "c"}, True),
        ("not_in", ["a", "b"], {"k": "a"}, False),
        ("exists", None, {"k": None}, True),
        ("exists", None, {"other": 1}, False),
        ("not_exists", None, {"other": 1}, True),
        ("not_exists", None, {"k": 0}, False),
        # a missing key never satisfies a comparison
        ("==", None, {}, False),
        (">", 0, {}, False),
        # incomparable types: the condition does not hold (no TypeError escapes)
        (">", 3, {"k": "text"}, False),
        ("in", {1, 2}, {"k": [1]}, False),
    ],
)
def test_context_value_ops(op: str, value: Any, context: dict[str, Any], holds: bool) -> None:
    rule = context_value("k", op, value)
    assert isinstance(rule, ContextCondition)
    assert rule.holds(context) is holds
    assert rule.evaluate(ALL_COMPLETED, context) is (RUN if holds else SKIP)


def test_context_condition_waits_then_needs_context() -> None:
    rule = context_value("k", "==", 1)
    assert rule.evaluate(PENDING, {"k": 1}) is WAIT
    assert rule.evaluate(ALL_COMPLETED) is NEEDS
    assert rule.evaluate(ALL_COMPLETED, None) is NEEDS
    assert rule.evaluate(ALL_COMPLETED, {"k": 1}) is RUN
    assert rule.has_condition()
    assert not rule.has_status_rule()


def test_context_value_rejects_unknown_operator() -> None:
    with pytest.raises(WorkflowDefinitionError) as info:
        context_value("k", "~=", 1)
    assert "'~='" in str(info.value)
    assert "not_exists" in str(info.value)  # lists the allowed ones


@pytest.mark.parametrize("op", ["in", "not_in"])
def test_membership_needs_a_container(op: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match="list, tuple, set or string"):
        context_value("k", op, 5)


def test_all_of() -> None:
    rule = all_of(context_value("a", "==", 1), context_value("b", "exists"))
    assert rule.evaluate(ALL_COMPLETED, {"a": 1, "b": 0}) is RUN
    assert rule.evaluate(ALL_COMPLETED, {"a": 1}) is SKIP
    assert rule.evaluate(ALL_COMPLETED, {"a": 2, "b": 0}) is SKIP
    assert rule.evaluate(ALL_COMPLETED) is NEEDS
    assert rule.evaluate(PENDING) is WAIT


def test_any_of() -> None:
    rule = any_of(context_value("a", "==", 1), context_value("b", "exists"))
    assert rule.evaluate(ALL_COMPLETED, {"a": 1}) is RUN
    assert rule.evaluate(ALL_COMPLETED, {"a": 2, "b": 0}) is RUN
    assert rule.evaluate(ALL_COMPLETED, {"a": 2}) is SKIP
    assert rule.evaluate(ALL_COMPLETED) is NEEDS
    assert rule.evaluate(PENDING) is WAIT


def test_none_of() -> None:
    rule = none_of(context_value("a", "==", 1), context_value("b", "exists"))
    assert rule.evaluate(ALL_COMPLETED, {"a": 2}) is RUN
    assert rule.evaluate(ALL_COMPLETED, {"a": 1}) is SKIP
    assert rule.evaluate(ALL_COMPLETED, {"a": 2, "b": 0}) is SKIP
    assert rule.evaluate(ALL_COMPLETED) is NEEDS
    assert rule.evaluate(PENDING) is WAIT


def test_combinators_mix_status_and_context() -> None:
    # run after a failure, or when the context asks for it
    rule = any_of(one_failed(), context_value("force", "==", True))
    assert rule.evaluate(DONE_ONE_FAILED) is RUN  # one RUN decides
    assert rule.evaluate(PENDING_ONE_FAILED, {"force": True}) is WAIT
    assert rule.evaluate(ALL_COMPLETED, {"force": True}) is RUN
    assert rule.evaluate(ALL_COMPLETED, {"force": False}) is SKIP
    assert rule.evaluate(ALL_COMPLETED) is NEEDS
    assert rule.has_condition()
    assert rule.has_status_rule()

    strict = all_of(all_success(), context_value("go", "exists"))
    assert strict.evaluate(DONE_ONE_FAILED) is SKIP  # one SKIP decides without the context
    assert strict.evaluate(PENDING) is WAIT

    neither = none_of(one_failed())
    assert neither.evaluate(ALL_COMPLETED) is RUN
    assert neither.evaluate(DONE_ONE_FAILED) is SKIP
    assert neither.evaluate(PENDING) is WAIT


def test_combinators_accept_rule_names_and_nest() -> None:
    rule = all_of("all_done", any_of(context_value("a", "exists"), context_value("b", "exists")))
    assert isinstance(rule, Combined)
    assert rule.rules[0] == StatusRule("all_done")
    assert rule.evaluate(DONE_ONE_FAILED, {"b": 1}) is RUN
    assert rule.evaluate(DONE_ONE_FAILED, {}) is SKIP


@pytest.mark.parametrize("combinator", [all_of, any_of, none_of])
def test_combinators_need_at_least_one_rule(combinator: Any) -> None:
    with pytest.raises(WorkflowDefinitionError, match="at least one rule"):
        combinator()


def test_coerce_rule() -> None:
    assert coerce_rule(None) == StatusRule("all_success")
    for name in ("all_success", "all_done", "one_failed", "none_failed"):
        assert coerce_rule(name) == StatusRule(name)
    rule = context_value("k", "exists")
    assert coerce_rule(rule) is rule
    with pytest.raises(WorkflowDefinitionError, match="unknown trigger rule 'all_failed'"):
        coerce_rule("all_failed")
    with pytest.raises(WorkflowDefinitionError, match="int"):
        coerce_rule(5)  # type: ignore[arg-type]


def test_with_default_status_wraps_a_bare_condition() -> None:
    cond = context_value("go", "==", True)
    wrapped = with_default_status(cond)
    assert wrapped == Combined("all_of", (StatusRule("all_success"), cond))
    # a holding condition never runs the task after a failed or skipped dependency
    assert wrapped.evaluate(DONE_ONE_FAILED, {"go": True}) is SKIP
    assert wrapped.evaluate(DONE_ONE_SKIPPED, {"go": True}) is SKIP
    assert wrapped.evaluate(PENDING, {"go": True}) is WAIT
    assert wrapped.evaluate(ALL_COMPLETED) is NEEDS
    assert wrapped.evaluate(ALL_COMPLETED, {"go": True}) is RUN
    assert wrapped.evaluate(ALL_COMPLETED, {"go": False}) is SKIP


def test_with_default_status_wraps_combined_conditions_too() -> None:
    cond = any_of(context_value("a", "exists"), context_value("b", "exists"))
    assert with_default_status(cond) == Combined("all_of", (StatusRule("all_success"), cond))


def test_with_default_status_keeps_rules_that_name_a_status() -> None:
    for rule in (
        all_done(),
        one_failed(),
        any_of(all_done(), context_value("k", "exists")),
        none_of(one_failed()),
    ):
        assert with_default_status(rule) is rule


def test_describe() -> None:
    assert str(all_success()) == "all_success"
    assert context_value("k", ">=", 3).describe() == "context['k'] >= 3"
    assert context_value("k", "exists").describe() == "context['k'] exists"
    rule = any_of(one_failed(), context_value("k", "in", ["a"]))
    assert rule.describe() == "any_of(one_failed, context['k'] in ['a'])"


def test_rules_are_frozen_values() -> None:
    assert context_value("k", "==", 1) == context_value("k", "==", 1)
    assert all_done() == all_done()
    assert all_done() != none_failed()


def test_public_rules_module_reexports_the_builders() -> None:
    assert public_rules.all_of is all_of
    assert public_rules.context_value is context_value
    assert public_rules.TriggerRule is TriggerRule
    for name in public_rules.__all__:
        assert hasattr(public_rules, name)
