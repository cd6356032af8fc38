"""Durations on the command line: ``30s``, ``5m``, ``2h``, ``30d``, ``1w``, ``250ms``."""

from __future__ import annotations

import math
from typing import Any

import click

# The parser lives with the settings (durations are settings too); re-exported for the CLI.
from cloacina.settings import fmt_span, parse_duration


class DurationType(click.ParamType[float, Any]):
    """A click parameter for durations (see :func:`parse_duration`), in seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < 0 or not math.isfinite(value):
                self.fail(f"invalid duration {value!r}: must be a finite number >= 0", param, ctx)
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationType()

__all__ = ["DURATION", "DurationType", "fmt_span", "parse_duration"]
