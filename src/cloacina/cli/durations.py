"""Durations on the command line: ``30s``, ``5m``, ``2h``, ``30d``, ``1w``, ``250ms``."""

from __future__ import annotations

import math
import re
from typing import Any

import click

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``"30s"``, ``"5m"``, ``"2h"``, ``"30d"``, ``"1w"``, ``"250ms"``
    or plain seconds (``"90"``, ``"0.5"``). Raises ``ValueError`` for anything else."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: use a number of seconds or a number with a unit, "
            "such as 30s, 5m, 2h, 30d (units: ms, s, m, h, d, w)"
        )
    seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}: too large")
    return seconds


def fmt_span(seconds: float) -> str:
    """A duration as :func:`parse_duration` reads it: ``30d``, ``2h``, ``90s``, ``0.5s``."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


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
