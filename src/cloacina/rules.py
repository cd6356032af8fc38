"""Trigger-rule builders: ``from cloacina.rules import all_done, context_value, any_of``."""

from __future__ import annotations

from cloacina.model.rules import (
    TriggerRule,
    all_done,
    all_of,
    all_success,
    any_of,
    context_value,
    none_failed,
    none_of,
    one_failed,
)

__all__ = [
    "TriggerRule",
    "all_done",
    "all_of",
    "all_success",
    "any_of",
    "context_value",
    "none_failed",
    "none_of",
    "one_failed",
]
