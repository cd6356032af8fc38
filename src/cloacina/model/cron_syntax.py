"""Cron expression syntax: the fields, their checks (an error names the field and its
column), aliases, and IANA time zones (an unknown one names the nearest valid zone).

:func:`normalise` turns an expression into the explicit 6-field form :mod:`cloacina.model.cron`
iterates with croniter. Standard library only where croniter is not installed (a package's
worker process): the fields are then checked here in full, croniter's own check is skipped.

Fields: 5 (``minute hour day-of-month month day-of-week``) or 6 with seconds first; values,
names (``jan``, ``mon``), ranges ``a-b`` (low to high), steps ``*/n``, ``a/n``, ``a-b/n``,
lists, ``L`` (last day of the month), ``d#n`` (the n-th weekday d of the month); day of week
0-7 with 0 and 7 Sunday. Days as in cron: if both day fields are restricted (neither is
``*`` or ``?``) a day matches when either does, else when both do.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, NoReturn

from cloacina.errors import InvalidScheduleError

__all__ = ["ALIASES", "load_croniter", "normalise", "validate_timezone"]

ALIASES: Final[Mapping[str, str]] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FIELDS_5: Final = ("minute", "hour", "day of month", "month", "day of week")
_FIELDS_6: Final = ("second", *_FIELDS_5)
_BOUNDS: Final[Mapping[str, tuple[int, int]]] = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day of month": (1, 31),
    "month": (1, 12),
    "day of week": (0, 7),
}
_MONTHS: Final = (
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
)
_DAYS: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES: Final[Mapping[str, Mapping[str, int]]] = {
    "month": {name: i + 1 for i, name in enumerate(_MONTHS)},
    "day of week": {name: i for i, name in enumerate(_DAYS)},
}

# --------------------------------------------------------------------------- time zones


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _nearest_zone(name: str) -> str | None:
    names = _zone_names()
    folded = name.strip().lower().replace(" ", "_")
    by_lower = {n.lower(): n for n in names}
    if folded in by_lower:  # wrong case only: "europe/berlin"
        return by_lower[folded]
    tails = [n for n in names if n.lower().rsplit("/", 1)[-1] == folded]
    if tails:  # a city alone: "Berlin"
        return tails[0]
    close = difflib.get_close_matches(folded, list(by_lower), n=1, cutoff=0.6)
    if close:
        return by_lower[close[0]]
    close = difflib.get_close_matches(
        folded, [n.lower().rsplit("/", 1)[-1] for n in names], n=1, cutoff=0.75
    )
    if close:
        return next(n for n in names if n.lower().rsplit("/", 1)[-1] == close[0])
    return None


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    if not name or name != name.strip():
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def validate_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``; an :class:`InvalidScheduleError` naming the nearest valid zone
    if there is no such zone."""
    zone = _zone(name) if isinstance(name, str) else None
    if zone is not None:
        return zone
    text = name if isinstance(name, str) else repr(name)
    suggestion = _nearest_zone(text) if isinstance(name, str) else None
    hint = f" Did you mean {suggestion!r}?" if suggestion else ""
    raise InvalidScheduleError(
        f"unknown time zone {text!r}.{hint} Use an IANA zone name such as 'Europe/Berlin', "
        "'America/New_York' or 'UTC'.",
        field="timezone",
        timezone=text,
        suggestion=suggestion,
    )


# --------------------------------------------------------------------------- parsing


def _error(
    expr: str, column: int, field_index: int | None, name: str | None, reason: str
) -> NoReturn:
    where = f"field {field_index} ({name}) at column {column}" if name else f"column {column}"
    raise InvalidScheduleError(
        f"invalid cron expression {expr!r}: {where}: {reason}. Expected 5 fields "
        "'minute hour day-of-month month day-of-week', 6 with seconds first, or an alias "
        f"({', '.join(ALIASES)}).",
        expression=expr,
        field=name,
        field_index=field_index,
        column=column,
    )


def _value(token: str, name: str) -> int | str:
    """The number a token stands for, or a reason it stands for none."""
    lo, hi = _BOUNDS[name]
    names = _NAMES.get(name, {})
    if token.lower() in names:
        return names[token.lower()]
    if not token.isdigit():
        if not token:
            return "a value is missing"
        if names:
            return f"{token!r} is neither a number {lo}-{hi} nor a name ({', '.join(names)})"
        return f"{token!r} is not a number"
    number = int(token)
    if not lo <= number <= hi:
        return f"{number} is out of range {lo}-{hi}"
    return number


class _FieldError(Exception):
    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


def _field(text: str, name: str) -> tuple[frozenset[int] | None, tuple[str, ...]]:
    """The values one field allows (None for "*" or "?") and its special tokens ("L" in the
    day of month, "day#n" in the day of week); :class:`_FieldError` says what is wrong."""
    if text in ("*", "?") and (text == "*" or name in ("day of month", "day of week")):
        return None, ()
    lo, hi = _BOUNDS[name]
    values: set[int] = set()
    special: list[str] = []
    offset = 0
    for part in text.split(","):
        found = _part(part, name, lo, hi)
        if isinstance(found, str):
            raise _FieldError(offset, found)
        if isinstance(found, tuple):
            special.append(found[0])
        else:
            values |= found
        offset += len(part) + 1
    if name == "day of week":
        values = {v % 7 for v in values}  # 7 is Sunday too
    return frozenset(values), tuple(special)


def _part(part: str, name: str, lo: int, hi: int) -> set[int] | tuple[str] | str:
    """One list item's values, a special token (in a 1-tuple) or the reason it is wrong."""
    if not part:
        return "an empty item in a list"
    base, slash, step_text = part.partition("/")
    top = 6 if name == "day of week" else hi  # steps run over a week once (7 is Sunday too)
    step = 1
    if slash:
        if not step_text.isdigit():
            return f"the step {step_text!r} is not a positive number"
        step = int(step_text)
        if not 1 <= step <= hi - lo + 1:
            return f"the step {step} is out of range 1-{hi - lo + 1}"
    if base == "*":
        return set(range(lo, top + 1, step))
    if name == "day of month" and base.upper() == "L" and not slash:
        return ("L",)  # the last day of the month
    if name == "day of week" and "#" in base and not slash:
        day, _, nth = base.partition("#")
        value = _value(day, name)
        if isinstance(value, str):
            return value
        if not (nth.isdigit() and 1 <= int(nth) <= 5):
            return f"{nth!r} in {base!r} is not a week of the month 1-5"
        return (f"{value % 7}#{int(nth)}",)
    first, dash, last = base.partition("-")
    start = _value(first, name)
    if isinstance(start, str):
        return start
    end = top if slash and not dash else start  # "a/n" runs from a to the end
    if dash:
        end_value = _value(last, name)
        if isinstance(end_value, str):
            return end_value
        if end_value < start:
            return f"the range {base!r} runs backwards (write it from low to high)"
        end = end_value
    return set(range(start, end + 1, step))


def _canonical(fields: list[tuple[frozenset[int] | None, tuple[str, ...]]]) -> str:
    """A 6-field expression of explicit value lists for croniter: croniter reads some ranges
    wrongly ("5-5" as "*"), so it is given only plain numbers, "*", "L" and "d#n"."""
    full = [frozenset(range(lo, hi + 1)) for lo, hi in _BOUNDS.values()]
    full[5] = frozenset(range(7))
    out: list[str] = []
    for (values, special), every in zip(fields, full, strict=True):
        if values is None or (values == every and not special):
            out.append("*")
        else:
            out.append(",".join([*map(str, sorted(values)), *special]))
    # Both day fields restricted: a day matches if either does (cron's rule). One of them
    # allowing every day then allows every day; croniter would read it as "*" and AND them.
    dom, dow = fields[3], fields[5]
    restricted = dom[0] is not None and dow[0] is not None
    if restricted and ((dom[0] == full[3] and not dom[1]) or (dow[0] == full[5] and not dow[1])):
        out[3] = out[5] = "*"
    return " ".join(out)


def _split(expr: str) -> list[tuple[str, int]]:
    """The whitespace-separated fields of ``expr`` with their 1-based columns."""
    return [(m.group(), m.start() + 1) for m in re.finditer(r"\S+", expr)]


def _probe(fields: list[str], index: int) -> str:
    """A 6-field expression with only field ``index`` from ``fields``, the rest "*"."""
    probe = ["0"] + ["*"] * 5
    probe[index] = fields[index]
    return " ".join(probe)


def load_croniter() -> types.ModuleType | None:
    """croniter, imported on first use; None where it is not installed: a package's worker
    process imports cloacina with the standard library only, and its ``cron(...)``
    declarations are checked field by field there (and fully when the package is built and
    registered, where croniter is)."""
    try:
        import croniter
    except ImportError:
        return None
    return croniter


def normalise(expr: str) -> str:
    """Validate ``expr``; the equivalent 6-field, seconds-first expression for croniter."""
    if not isinstance(expr, str):
        raise InvalidScheduleError(
            f"a cron expression must be a string, not {type(expr).__name__}",
            expression=repr(expr),
        )
    stripped = expr.strip()
    if not stripped:
        _error(expr, 1, None, None, "the expression is empty")
    if stripped.startswith("@"):
        alias = stripped.lower()
        if alias not in ALIASES:
            close = difflib.get_close_matches(alias, list(ALIASES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _error(expr, expr.index("@") + 1, None, None, f"unknown alias {stripped!r}{hint}")
        stripped = ALIASES[alias]
        return "0 " + stripped
    parts = _split(expr)
    if len(parts) not in (5, 6):
        column = parts[6][1] if len(parts) > 6 else len(expr) + 1
        _error(expr, column, None, None, f"{len(parts)} fields (cron takes 5 or 6)")
    names = _FIELDS_6 if len(parts) == 6 else _FIELDS_5
    parsed: list[tuple[frozenset[int] | None, tuple[str, ...]]] = []
    if len(parts) == 5:
        parsed.append((frozenset([0]), ()))  # seconds: 0
    for index, ((text, column), name) in enumerate(zip(parts, names, strict=True), start=1):
        try:
            parsed.append(_field(text, name))
        except _FieldError as exc:
            _error(expr, column + exc.offset, index, name, exc.reason)
    dom_at = names.index("day of month")
    if parsed[5][1] and parsed[3][0] is not None:
        _error(
            expr,
            parts[dom_at][1],
            dom_at + 1,
            "day of month",
            "a day of week with '#' cannot be combined with a day of month (use '*')",
        )
    normalised = _canonical(parsed)
    module = load_croniter()
    if module is None:  # a package's worker process: the fields were checked above
        return normalised
    croniter = module.croniter
    CroniterError, CroniterBadDateError = module.CroniterError, module.CroniterBadDateError
    try:
        croniter(normalised, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=True)
    except CroniterError as exc:
        # Our own checks passed; say which field croniter refuses.
        fields = normalised.split(" ")
        shift = 6 - len(parts)
        for i in range(shift, 6):
            try:
                croniter(_probe(fields, i), second_at_beginning=True)
            except CroniterError:
                text, column = parts[i - shift]
                _error(expr, column, i - shift + 1, names[i - shift], f"{text!r}: {exc}")
        _error(expr, 1, None, None, str(exc))
    try:
        croniter(normalised, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=True).get_next(
            float
        )
    except CroniterBadDateError:
        _error(
            expr,
            parts[dom_at][1],
            dom_at + 1,
            "day of month",
            "the expression matches no date (that day of the month never occurs in the "
            "months given)",
        )
    return normalised
