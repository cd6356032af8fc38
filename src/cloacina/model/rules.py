"""Trigger rules: when a task runs, given the outcome of its dependencies and the context.

A rule evaluates to one of four verdicts. ``WAIT``: not decidable yet. ``RUN`` / ``SKIP``: decided.
``NEEDS_CONTEXT``: the dependencies are settled and the answer depends on the task's input
context, which the executor evaluates just before the task would start.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cloacina.errors import WorkflowDefinitionError


class Verdict(enum.Enum):
    WAIT = "wait"
    RUN = "run"
    SKIP = "skip"
    NEEDS_CONTEXT = "needs_context"


@dataclass(frozen=True, slots=True)
class DepCounts:
    """How a task's dependencies stand: how many there are and how they ended."""

    total: int
    remaining: int
    failed: int
    skipped: int

    @property
    def completed(self) -> int:
        return self.total - self.remaining - self.failed - self.skipped


class TriggerRule:
    """Base class of trigger rules. Build them with the functions of this module."""

    def evaluate(self, deps: DepCounts, context: Mapping[str, Any] | None = None) -> Verdict:
        """The verdict for these dependency counts (and context, when one is given)."""
        raise NotImplementedError

    def has_condition(self) -> bool:
        """Whether the rule reads the context (and so is re-checked before the task starts)."""
        return False

    def has_status_rule(self) -> bool:
        return False

    def describe(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class StatusRule(TriggerRule):
    """A rule on the dependencies' outcomes only."""

    kind: str

    def evaluate(self, deps: DepCounts, context: Mapping[str, Any] | None = None) -> Verdict:
        kind = self.kind
        if kind == "all_success":
            if deps.failed or deps.skipped:
                return Verdict.SKIP
            return Verdict.RUN if deps.remaining == 0 else Verdict.WAIT
        if kind == "all_done":
            return Verdict.RUN if deps.remaining == 0 else Verdict.WAIT
        if kind == "one_failed":
            if deps.remaining:
                return Verdict.WAIT  # wait for all: the task's input must not depend on timing
            return Verdict.RUN if deps.failed else Verdict.SKIP
        if kind == "none_failed":
            if deps.failed:
                return Verdict.SKIP
            return Verdict.RUN if deps.remaining == 0 else Verdict.WAIT
        raise AssertionError(kind)  # pragma: no cover - constructor validates

    def has_status_rule(self) -> bool:
        return True

    def describe(self) -> str:
        return self.kind


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
}
_PRESENCE_OPS = ("exists", "not_exists")


@dataclass(frozen=True)
class ContextCondition(TriggerRule):
    """``context_value(key, op, value)``: compares a context value once dependencies settle."""

    key: str
    op: str
    value: Any = None

    def evaluate(self, deps: DepCounts, context: Mapping[str, Any] | None = None) -> Verdict:
        if deps.remaining:
            return Verdict.WAIT
        if context is None:
            return Verdict.NEEDS_CONTEXT
        return Verdict.RUN if self.holds(context) else Verdict.SKIP

    def holds(self, context: Mapping[str, Any]) -> bool:
        present = self.key in context
        if self.op == "exists":
            return present
        if self.op == "not_exists":
            return not present
        if not present:
            return False
        try:
            return bool(_OPS[self.op](context[self.key], self.value))
        except TypeError:
            return False  # incomparable types: the condition does not hold

    def has_condition(self) -> bool:
        return True

    def describe(self) -> str:
        if self.op in _PRESENCE_OPS:
            return f"context[{self.key!r}] {self.op}"
        value = self.value
        if isinstance(value, set | frozenset):  # a set's repr order varies between processes
            return f"context[{self.key!r}] {self.op} {{{', '.join(sorted(map(repr, value)))}}}"
        return f"context[{self.key!r}] {self.op} {value!r}"


@dataclass(frozen=True)
class Combined(TriggerRule):
    """``all_of`` / ``any_of`` / ``none_of`` over other rules."""

    mode: str
    rules: tuple[TriggerRule, ...]

    def evaluate(self, deps: DepCounts, context: Mapping[str, Any] | None = None) -> Verdict:
        verdicts = [r.evaluate(deps, context) for r in self.rules]
        if self.mode == "none_of":
            flip = {Verdict.RUN: Verdict.SKIP, Verdict.SKIP: Verdict.RUN}
            verdicts = [flip.get(v, v) for v in verdicts]
        if self.mode == "any_of":
            decided_yes, decided_no = Verdict.RUN, Verdict.SKIP
        else:
            decided_yes, decided_no = Verdict.SKIP, Verdict.RUN
        # any_of: one RUN decides; all_of/none_of: one SKIP decides.
        if decided_yes in verdicts:
            return decided_yes
        if Verdict.WAIT in verdicts:
            return Verdict.WAIT
        if Verdict.NEEDS_CONTEXT in verdicts:
            return Verdict.NEEDS_CONTEXT
        return decided_no

    def has_condition(self) -> bool:
        return any(r.has_condition() for r in self.rules)

    def has_status_rule(self) -> bool:
        return any(r.has_status_rule() for r in self.rules)

    def describe(self) -> str:
        return f"{self.mode}({', '.join(r.describe() for r in self.rules)})"


_STATUS_KINDS = ("all_success", "all_done", "one_failed", "none_failed")


def all_success() -> TriggerRule:
    """Run when every dependency completed; skip as soon as one failed or was skipped."""
    return StatusRule("all_success")


def all_done() -> TriggerRule:
    """Run once every dependency is finished, whatever the outcome."""
    return StatusRule("all_done")


def one_failed() -> TriggerRule:
    """Run once every dependency finished, if at least one failed; skip otherwise.

    (It waits for all of them so that the task's input context does not depend on timing.)
    """
    return StatusRule("one_failed")


def none_failed() -> TriggerRule:
    """Run when all dependencies finished and none failed (skipped ones are fine)."""
    return StatusRule("none_failed")


def context_value(key: str, op: str, value: Any = None) -> TriggerRule:
    """A condition on the task's input context: ``==, !=, >, <, >=, <=, in, not_in, exists,
    not_exists``."""
    if op not in _OPS and op not in _PRESENCE_OPS:
        allowed = ", ".join([*_OPS, *_PRESENCE_OPS])
        raise WorkflowDefinitionError(
            f"unknown context_value operator {op!r}; use one of {allowed}"
        )
    if op in ("in", "not_in") and not isinstance(value, list | tuple | set | frozenset | str):
        raise WorkflowDefinitionError(
            f"context_value({key!r}, {op!r}, ...) needs a list, tuple, set or string to look in"
        )
    return ContextCondition(key, op, value)


def _combine(mode: str, rules: tuple[TriggerRule | str, ...]) -> TriggerRule:
    if not rules:
        raise WorkflowDefinitionError(f"{mode}() needs at least one rule")
    return Combined(mode, tuple(coerce_rule(r) for r in rules))


def all_of(*rules: TriggerRule | str) -> TriggerRule:
    """Run when every rule says run; skip when any says skip."""
    return _combine("all_of", rules)


def any_of(*rules: TriggerRule | str) -> TriggerRule:
    """Run when any rule says run; skip when all say skip."""
    return _combine("any_of", rules)


def none_of(*rules: TriggerRule | str) -> TriggerRule:
    """Run when no rule says run (each rule's verdict inverted, then ``all_of``)."""
    return _combine("none_of", rules)


def coerce_rule(rule: TriggerRule | str | None) -> TriggerRule:
    """Accept a rule, a rule name such as ``"all_done"``, or ``None`` (the default).

    A rule made only of context conditions is combined with ``all_success``, so a condition
    never makes a task run after a failed dependency unless a status rule says so.
    """
    if rule is None:
        return StatusRule("all_success")
    if isinstance(rule, str):
        if rule not in _STATUS_KINDS:
            raise WorkflowDefinitionError(
                f"unknown trigger rule {rule!r}; use one of {', '.join(_STATUS_KINDS)} "
                "or a rule built with cloacina.rules"
            )
        return StatusRule(rule)
    if not isinstance(rule, TriggerRule):
        raise WorkflowDefinitionError(
            f"trigger_rule must be a rule name or a cloacina.rules rule, not {type(rule).__name__}"
        )
    return rule


def with_default_status(rule: TriggerRule) -> TriggerRule:
    """``rule`` itself, or ``all_of(all_success(), rule)`` when it names no status rule."""
    if rule.has_status_rule():
        return rule
    return Combined("all_of", (StatusRule("all_success"), rule))


def rule_to_data(rule: TriggerRule) -> dict[str, Any]:
    """A JSON/TOML-friendly description of ``rule`` (for package manifests)."""
    if isinstance(rule, StatusRule):
        return {"kind": rule.kind}
    if isinstance(rule, ContextCondition):
        data: dict[str, Any] = {"kind": "context_value", "key": rule.key, "op": rule.op}
        if rule.op not in _PRESENCE_OPS:
            value = rule.value
            if isinstance(value, set | frozenset | tuple):
                value = sorted(value, key=repr) if not isinstance(value, tuple) else list(value)
            data["value"] = value
        return data
    if isinstance(rule, Combined):
        return {"kind": rule.mode, "rules": [rule_to_data(r) for r in rule.rules]}
    raise WorkflowDefinitionError(f"cannot describe trigger rule {rule!r}")


def rule_from_data(data: Mapping[str, Any]) -> TriggerRule:
    """The inverse of :func:`rule_to_data`."""
    kind = data.get("kind")
    if kind in _STATUS_KINDS:
        return StatusRule(str(kind))
    if kind == "context_value":
        return context_value(str(data["key"]), str(data["op"]), data.get("value"))
    if kind in ("all_of", "any_of", "none_of"):
        return Combined(str(kind), tuple(rule_from_data(r) for r in data.get("rules", [])))
    raise WorkflowDefinitionError(f"unknown trigger rule kind {kind!r} in a manifest")


__all__ = [
    "ContextCondition",
    "DepCounts",
    "StatusRule",
    "TriggerRule",
    "Verdict",
    "all_done",
    "all_of",
    "all_success",
    "any_of",
    "coerce_rule",
    "context_value",
    "none_failed",
    "none_of",
    "one_failed",
    "rule_from_data",
    "rule_to_data",
]
