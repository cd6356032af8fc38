"""cloaca's trigger-rule builders (plain dicts) and their translation to Cloacina's rules.

cloaca runs a task once every dependency is terminal, whatever the outcome (its default
rule ``Always``): that is Cloacina's ``all_done``. A ``context_value`` condition is read from
the task's input context when the dependencies settle; a false rule makes the task Skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloacina.model.rules import (
    Combined,
    DepCounts,
    TriggerRule,
    Verdict,
    all_done,
)

_OPERATORS = {
    "equals": "Equals",
    "==": "Equals",
    "eq": "Equals",
    "notequals": "NotEquals",
    "!=": "NotEquals",
    "ne": "NotEquals",
    "greaterthan": "GreaterThan",
    ">": "GreaterThan",
    "gt": "GreaterThan",
    "lessthan": "LessThan",
    "<": "LessThan",
    "lt": "LessThan",
    "contains": "Contains",
    "notcontains": "NotContains",
    "exists": "Exists",
    "notexists": "NotExists",
}


def context_value(key: str, operator: str, value: Any = None) -> dict[str, Any]:
    """A condition on the task's input context: ``context_value("mode", "Equals", "full")``."""
    canonical = _OPERATORS.get(str(operator).replace("_", "").lower())
    if canonical is None:
        raise ValueError(
            f"trigger rule: unknown operator '{operator}'. Use Equals, NotEquals, GreaterThan, "
            "LessThan, Contains, NotContains, Exists or NotExists"
        )
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"trigger rule: value for '{key}' is not JSON: {exc}") from None
    return {"type": "ContextValue", "key": key, "operator": canonical, "value": value}


def task_success(task_name: str) -> dict[str, Any]:
    return {"type": "TaskSuccess", "task_name": task_name}


def task_failed(task_name: str) -> dict[str, Any]:
    return {"type": "TaskFailed", "task_name": task_name}


def task_skipped(task_name: str) -> dict[str, Any]:
    return {"type": "TaskSkipped", "task_name": task_name}


def all_of(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"type": "All", "conditions": list(conditions)}


def any_of(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Any", "conditions": list(conditions)}


def none_of(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"type": "None", "conditions": list(conditions)}


def always() -> dict[str, Any]:
    return {"type": "Always"}


def normalize_rule(rule: object) -> dict[str, Any]:
    """``@task(trigger_rules=...)`` as cloaca keeps it: a bare condition is wrapped in
    ``All``; ``None`` is ``Always``. Invalid rules raise ``ValueError``."""
    if rule is None:
        return always()
    if not isinstance(rule, Mapping) or "type" not in rule:
        raise ValueError(f"trigger_rules must be a rule built with cloaca's builders, not {rule!r}")
    data = dict(rule)
    kind = data["type"]
    if kind in ("Always", "All", "Any", "None"):
        for cond in data.get("conditions", []):
            _check_condition(cond)
        return data
    _check_condition(data)
    return {"type": "All", "conditions": [data]}


def _check_condition(cond: object) -> None:
    if not isinstance(cond, Mapping) or cond.get("type") not in (
        "ContextValue",
        "TaskSuccess",
        "TaskFailed",
        "TaskSkipped",
    ):
        raise ValueError(f"trigger rule: invalid condition {cond!r}")


@dataclass(frozen=True)
class ContextValue(TriggerRule):
    """cloaca's ``ContextValue`` condition with its own operators' meaning."""

    key: str
    operator: str
    value: Any = None

    def evaluate(self, deps: DepCounts, context: Mapping[str, Any] | None = None) -> Verdict:
        if deps.remaining:
            return Verdict.WAIT
        if context is None:
            return Verdict.NEEDS_CONTEXT
        return Verdict.RUN if self.holds(context) else Verdict.SKIP

    def holds(self, context: Mapping[str, Any]) -> bool:
        present = self.key in context
        op = self.operator
        if op == "Exists":
            return present
        if op == "NotExists":
            return not present
        if not present:
            return False
        actual = context[self.key]
        if op == "Equals":
            return bool(actual == self.value)
        if op == "NotEquals":
            return bool(actual != self.value)
        if op in ("GreaterThan", "LessThan"):
            if not (_is_number(actual) and _is_number(self.value)):
                return False
            return bool(actual > self.value if op == "GreaterThan" else actual < self.value)
        contains = _contains(actual, self.value)
        return contains if op == "Contains" else not contains

    def has_condition(self) -> bool:
        return True

    def describe(self) -> str:
        return f"context[{self.key!r}] {self.operator} {self.value!r}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _contains(container: object, value: object) -> bool:
    if isinstance(container, str):
        return isinstance(value, str) and value in container
    if isinstance(container, list):
        return value in container
    return False


def to_cloacina_rule(rule: Mapping[str, Any]) -> TriggerRule:
    """The Cloacina rule for a normalized cloaca rule: every rule waits for all
    dependencies to settle (``all_done``), then its conditions decide."""
    kind = rule["type"]
    if kind == "Always":
        return all_done()
    return Combined("all_of", (all_done(), _translate(rule)))


def _translate(cond: Mapping[str, Any]) -> TriggerRule:
    kind = cond["type"]
    if kind == "ContextValue":
        return ContextValue(str(cond["key"]), str(cond["operator"]), cond.get("value"))
    if kind in ("All", "Any", "None"):
        parts = tuple(_translate(c) for c in cond.get("conditions", []))
        mode = {"All": "all_of", "Any": "any_of", "None": "none_of"}[kind]
        return Combined(mode, parts or (all_done(),))
    if kind == "Always":
        return all_done()
    raise ValueError(
        f"trigger rule {kind} is not supported by cloacina.compat.cloaca: Cloacina's rules see "
        "how many dependencies failed or were skipped, not which (use Cloacina's "
        "all_success / one_failed / none_failed rules with cloacina.task)"
    )
