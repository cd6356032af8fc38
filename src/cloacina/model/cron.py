"""Cron schedules as pure time rules (DESIGN §10): which instants a schedule fires at.

No I/O here. Our parser (:mod:`cloacina.model.cron_syntax`, which also states the syntax)
checks each field (so errors name the field and column) and gives
`croniter <https://github.com/kiorky/croniter>`_ explicit value lists (it misreads some
ranges); croniter iterates them over *wall-clock* times (naive local times, iterated as if
they were UTC so that croniter's own DST handling never runs). The DST policy is ours, applied
when a wall-clock time is turned into an instant:

- a local time that does not exist (the clocks spring forward over it) fires once, at the
  first valid instant after it (the instant of the change: 02:30 on a spring-forward night in
  Berlin fires at 03:00 CEST; every skipped minute of that hour fires at that one instant);
- an ambiguous local time (the clocks fall back over it) fires once, at its first occurrence;
  the repeated hour fires nothing a second time.

Fire instants are whole epoch seconds (floats), strictly increasing.
"""

from __future__ import annotations

import json
import math
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

from cloacina.errors import InvalidScheduleError
from cloacina.model.cron_syntax import ALIASES, load_croniter, normalise, validate_timezone

__all__ = [
    "ALIASES",
    "CATCHUP_POLICIES",
    "DEFAULT_GRACE",
    "CatchupPolicy",
    "CronSchedule",
    "CronSpec",
    "catchup_times",
    "cron",
    "to_instant",
    "validate_catchup",
    "validate_timezone",
]

CatchupPolicy = Literal["skip", "latest", "all"]
CATCHUP_POLICIES: Final[tuple[str, ...]] = ("skip", "latest", "all")

#: Seconds a due time may lie behind "now" and still count as current rather than missed.
DEFAULT_GRACE: Final[float] = 60.0

_EPOCH: Final = datetime(1970, 1, 1)
_ONE_SECOND: Final = timedelta(seconds=1)
# croniter's errors, and the date range errors a far-off instant can raise.
_ITERATION_END: Final = (OverflowError, ValueError, OSError)  # CroniterError is a ValueError


# --------------------------------------------------------------------------- wall clock


def _wall(zone: zoneinfo.ZoneInfo, t: int) -> datetime:
    return datetime.fromtimestamp(t, zone).replace(tzinfo=None, fold=0)


def _offset(zone: zoneinfo.ZoneInfo, t: int) -> timedelta:
    offset = datetime.fromtimestamp(t, zone).utcoffset()
    return offset if offset is not None else timedelta(0)


def _bisect(lo: int, hi: int, pred: Callable[[int], bool]) -> int:
    """The smallest integer in ``(lo, hi]`` for which ``pred`` holds (false at lo, true at
    hi, monotone): the instant of a zone's offset change."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _instant(zone: zoneinfo.ZoneInfo, wall: datetime) -> tuple[int, bool]:
    """The instant a (whole-second) wall time fires at, and whether it does not exist.

    An ambiguous wall time is its first occurrence; one in a gap is the first instant after
    it, the instant of the change."""
    t = int(wall.replace(tzinfo=zone, fold=0).timestamp())  # the first occurrence
    if _wall(zone, t) == wall:
        return t, False
    # In a gap, fold=0 reads it with the offset before the change (an instant after it) and
    # fold=1 with the offset after (an instant before it).
    other = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    lo, hi = min(other, t), max(other, t)
    return _bisect(lo - 1, hi, lambda s: _wall(zone, s) > wall), True


def _fold_end(zone: zoneinfo.ZoneInfo, t: int) -> datetime | None:
    """If ``t`` is the second occurrence of an ambiguous wall time, the wall time at which
    the repeated stretch ends; else None."""
    here = datetime.fromtimestamp(t, zone)
    if not here.fold:
        return None
    after = here.utcoffset()
    before = here.replace(fold=0).utcoffset()
    if after is None or before is None or after == before:
        return None
    first = t - int((before - after).total_seconds())  # the first occurrence, before it
    change = _bisect(first, t, lambda s: _offset(zone, s) == after)
    return _EPOCH + timedelta(seconds=change) + before


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class CronSpec:
    """A validated cron expression in an IANA time zone. Build one with :meth:`parse`."""

    expression: str
    timezone: str = "UTC"
    _cron: str = field(default="", repr=False, compare=False)
    _zone: zoneinfo.ZoneInfo = field(default=zoneinfo.ZoneInfo("UTC"), repr=False, compare=False)

    @classmethod
    def parse(cls, expr: str, timezone: str = "UTC") -> CronSpec:
        """Validate ``expr`` (5 fields, 6 with seconds first, or an alias such as ``@daily``)
        and ``timezone``; :class:`InvalidScheduleError` says what is wrong and where."""
        normalised = normalise(expr)
        zone = validate_timezone(timezone)
        return cls(expr.strip(), timezone, normalised, zone)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return self._zone

    # -- public queries

    def next_after(self, t: float) -> float | None:
        """The first fire instant strictly after ``t``; None if there is none (ever)."""
        return next(self._forward(t), None)

    def prev_before(self, t: float) -> float | None:
        """The last fire instant strictly before ``t``; None if there is none."""
        return next(self._backward(t), None)

    def iter_after(self, t: float) -> Iterator[float]:
        """Every fire instant strictly after ``t``, ascending (endless for most schedules)."""
        return self._forward(t)

    def times_between(
        self, after: float, until: float, limit: int | None = None
    ) -> Iterator[float]:
        """Fire instants ``t`` with ``after < t <= until``, ascending, at most ``limit``."""
        for count, t in enumerate(self._forward(after)):
            if t > until or (limit is not None and count >= limit):
                return
            yield t

    def times_in(self, start: float, end: float, limit: int | None = None) -> Iterator[float]:
        """Fire instants ``t`` with ``start <= t <= end`` (a backfill's range), ascending."""
        return self.times_between(math.ceil(start) - 1, end, limit)

    def count_between(self, after: float, until: float, limit: int | None = None) -> int:
        """How many fire instants lie in ``(after, until]``; counting stops at ``limit``
        (ask for ``limit=N + 1`` to learn whether there are more than N cheaply)."""
        return sum(1 for _ in self.times_between(after, until, limit))

    def local(self, t: float) -> datetime:
        """The instant ``t`` as an aware datetime in this schedule's zone."""
        return datetime.fromtimestamp(t, self._zone)

    def _iter(self, start: datetime, forward: bool) -> Iterator[datetime]:
        module = load_croniter()
        if module is None:
            raise ImportError(
                "computing cron times needs croniter, which is not installed here: "
                "pip install croniter (a dependency of cloacina)"
            )
        try:
            it = module.croniter(
                self._cron, start.replace(tzinfo=UTC), ret_type=datetime, second_at_beginning=True
            )
        except _ITERATION_END:  # the edge of datetime's range
            return
        step = it.get_next if forward else it.get_prev
        while True:
            try:
                wall = step()
            except _ITERATION_END:
                return
            if wall.year <= 1:  # the far past: no instant to map it to
                return
            yield wall.replace(tzinfo=None, fold=0)  # croniter may set fold

    def _forward(self, t: float) -> Iterator[float]:
        try:
            last = math.floor(t)
            end = _fold_end(self._zone, last)
            start = end - _ONE_SECOND if end is not None else _wall(self._zone, last)
        except _ITERATION_END:
            return
        while True:
            restart: datetime | None = None
            for wall in self._iter(start, forward=True):
                try:
                    instant, gap = _instant(self._zone, wall)
                    # The rest of a gap fires at the same instant: jump past it (max: always
                    # make progress).
                    restart = max(_wall(self._zone, instant), wall) if gap else None
                except _ITERATION_END:
                    return
                if instant > last:
                    last = instant
                    yield float(instant)
                if restart is not None:
                    break
            if restart is None:
                return
            start = restart

    def _backward(self, t: float) -> Iterator[float]:
        try:
            bound = math.ceil(t)  # fires are whole seconds: < t is < ceil(t)
            end = _fold_end(self._zone, bound)
            start = end if end is not None else _wall(self._zone, bound)
        except _ITERATION_END:
            return
        while True:
            restart: datetime | None = None
            for wall in self._iter(start, forward=False):
                try:
                    instant, gap = _instant(self._zone, wall)
                    # Jump to the wall time just before the gap began.
                    restart = (
                        min(_wall(self._zone, instant - 1) + _ONE_SECOND, wall) if gap else None
                    )
                except _ITERATION_END:
                    return
                if instant < bound:
                    bound = instant
                    yield float(instant)
                if restart is not None:
                    break
            if restart is None:
                return
            start = restart


# --------------------------------------------------------------------------- catch-up


def validate_catchup(policy: str, max_catchup: int) -> None:
    """Raise :class:`InvalidScheduleError` unless ``policy`` is skip/latest/all and
    ``max_catchup`` an integer of at least 1."""
    if policy not in CATCHUP_POLICIES:
        raise InvalidScheduleError(
            f"unknown catch-up policy {policy!r}: use one of {', '.join(CATCHUP_POLICIES)}",
            field="catchup",
        )
    if isinstance(max_catchup, bool) or not isinstance(max_catchup, int) or max_catchup < 1:
        raise InvalidScheduleError(
            f"max_catchup must be an integer of at least 1, not {max_catchup!r}",
            field="max_catchup",
        )


def catchup_times(
    spec: CronSpec,
    after: float,
    now: float,
    policy: str,
    max_catchup: int,
    *,
    grace: float = DEFAULT_GRACE,
    start: float | None = None,
    end: float | None = None,
) -> list[float]:
    """The times to fire at ``now`` for a schedule whose times up to ``after`` are handled.

    The due times are the fire times ``t`` with ``after < t <= now`` (and ``start <= t <= end``
    when bounds are given). A due time is **current** if ``t >= now - grace``: it became due
    during normal running (the runner is at most ``grace`` seconds late), and every policy
    fires it. It is **missed** if ``t < now - grace``: it fell due while nobody was running
    or the schedule was paused. The policy decides only the missed ones:

    - ``skip`` fires none of them;
    - ``latest`` fires the newest of them;
    - ``all`` fires each, but at most ``max_catchup`` of them: the newest ones.

    Returns the chosen times ascending (current ones last).
    """
    validate_catchup(policy, max_catchup)
    if grace < 0:
        raise InvalidScheduleError(f"grace must be >= 0 seconds, not {grace!r}", field="grace")
    top = now if end is None else min(now, end)
    floor = after if start is None else max(after, math.ceil(start) - 1)
    cutoff = now - grace
    current: list[float] = []
    missed: list[float] = []
    wanted = {"skip": 0, "latest": 1, "all": max_catchup}[policy]
    for t in spec._backward(math.floor(top) + 1):  # fires <= top, newest first
        if t <= floor:
            break
        if t >= cutoff:
            current.append(t)
            continue
        if len(missed) >= wanted:
            break
        missed.append(t)
    return [*reversed(missed), *reversed(current)]


# --------------------------------------------------------------------------- instants


def to_instant(value: datetime | float | int | str, timezone: str = "UTC") -> float:
    """Epoch seconds of ``value``: a number as is, an aware datetime, or a naive datetime or
    ISO-8601 string read as a wall time in ``timezone`` (with the DST policy of fire times: a
    nonexistent time is the first valid instant after it, an ambiguous one its first
    occurrence)."""
    if isinstance(value, bool):
        raise InvalidScheduleError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidScheduleError(f"not a time: {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidScheduleError(
                f"not an ISO-8601 time: {value!r} (write e.g. '2026-03-29T02:00:00+01:00')"
            ) from None
    if not isinstance(value, datetime):
        raise InvalidScheduleError(f"not a time: {value!r}")
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.timestamp()
    zone = validate_timezone(timezone)
    whole = value.replace(microsecond=0)
    instant, _ = _instant(zone, whole)
    return instant + value.microsecond / 1_000_000


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class CronSchedule:
    """A schedule declared on a workflow: ``@workflow(..., schedules=[cron(...)])``."""

    expression: str
    timezone: str = "UTC"
    name: str | None = None
    context: dict[str, Any] = field(default_factory=dict, hash=False)
    catchup: CatchupPolicy = "skip"
    max_catchup: int = 100
    start: float | None = None  # epoch seconds; no time before it fires
    end: float | None = None  # epoch seconds; no time after it fires

    @property
    def spec(self) -> CronSpec:
        return CronSpec.parse(self.expression, self.timezone)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (for a package manifest)."""
        return {
            "cron": self.expression,
            "timezone": self.timezone,
            "name": self.name,
            "context": dict(self.context),
            "catchup": self.catchup,
            "max_catchup": self.max_catchup,
            "start": self.start,
            "end": self.end,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CronSchedule:
        """The inverse of :meth:`to_dict`, validated like :func:`cron`."""
        return cron(
            data["cron"],
            data.get("timezone", "UTC"),
            name=data.get("name"),
            context=data.get("context"),
            catchup=data.get("catchup", "skip"),
            max_catchup=data.get("max_catchup", 100),
            start=data.get("start"),
            end=data.get("end"),
        )


def cron(
    expr: str,
    timezone: str = "UTC",
    *,
    name: str | None = None,
    context: Mapping[str, Any] | None = None,
    catchup: str = "skip",
    max_catchup: int = 100,
    start: datetime | float | str | None = None,
    end: datetime | float | str | None = None,
) -> CronSchedule:
    """Declare a cron schedule for a workflow, validated now (at decoration time).

    ``start``/``end`` bound the fire times (inclusive); naive datetimes and ISO strings are
    wall times in ``timezone``.
    """
    spec = CronSpec.parse(expr, timezone)
    validate_catchup(catchup, max_catchup)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidScheduleError(f"a schedule name must be a non-empty string, not {name!r}")
    data = dict(context or {})
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidScheduleError(
            f"the schedule's context must be JSON-serialisable ({exc})", field="context"
        ) from None
    first = None if start is None else to_instant(start, timezone)
    last = None if end is None else to_instant(end, timezone)
    if first is not None and last is not None and first > last:
        raise InvalidScheduleError(
            f"the schedule's start ({start}) is after its end ({end})", field="start"
        )
    return CronSchedule(
        spec.expression,
        timezone,
        name,
        data,
        cast(CatchupPolicy, catchup),
        max_catchup,
        first,
        last,
    )
