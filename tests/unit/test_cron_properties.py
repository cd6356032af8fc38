"""Property tests of the cron time rules over random expressions and time zones, around DST
changes: the fire times equal those of an independent oracle (enumerate the matching wall
times minute by minute, map each to an instant from the zone's list of offset changes: a
first occurrence, or the change's instant for a wall time in a gap), are strictly increasing
and never doubled; next_after/prev_before agree with times_between; catch-up policies hold.
"""

from __future__ import annotations

import functools
import itertools
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from cloacina.errors import InvalidScheduleError
from cloacina.model.cron import CronSpec, catchup_times

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # a 30-minute shift
    "Asia/Kathmandu",  # +05:45, no DST
    "America/Sao_Paulo",  # until 2019 its clocks sprang forward at midnight
    "Pacific/Chatham",  # +12:45 / +13:45
    "UTC",
]
YEARS = (2018, 2028)
EPOCH = datetime(1970, 1, 1)
# CLOACINA_CRON_EXAMPLES=2000 for a longer hunt; the default keeps the file to a few seconds.
PROPERTY = settings(
    max_examples=int(os.environ.get("CLOACINA_CRON_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# --------------------------------------------------------------------------- zones


def _offset(zone: ZoneInfo, t: int) -> int:
    off = datetime.fromtimestamp(t, zone).utcoffset()
    assert off is not None
    return int(off.total_seconds())


@functools.cache
def transitions(name: str) -> tuple[tuple[int, int, int], ...]:
    """(instant, offset before, offset after) of each offset change in YEARS."""
    zone = ZoneInfo(name)
    start = int(datetime(YEARS[0], 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(YEARS[1], 1, 1, tzinfo=UTC).timestamp())
    found = []
    step = 6 * 3600
    prev = _offset(zone, start)
    for t in range(start + step, end, step):
        here = _offset(zone, t)
        if here != prev:
            lo, hi = t - step, t
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(zone, mid) == prev:
                    lo = mid
                else:
                    hi = mid
            found.append((hi, prev, here))
            prev = here
    return tuple(found)


def oracle_instant(name: str, wall: datetime) -> int | None:
    """The instant a matching wall time fires at by the §10 rule, derived from the zone's
    offset changes: its first occurrence, or for a time in a gap the instant of the change."""
    zone = ZoneInfo(name)
    changes = transitions(name)
    local_seconds = int((wall - EPOCH).total_seconds())
    offsets = {_offset(zone, local_seconds)}
    for t, before, after in changes:
        if abs(t - local_seconds) < 3 * 86400:
            offsets |= {before, after}
    valid = [local_seconds - off for off in offsets if _offset(zone, local_seconds - off) == off]
    if valid:
        return min(valid)
    for t, before, after in changes:
        if t + before <= local_seconds < t + after:
            return t
    return None  # outside the years we know the changes of


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]
    star: bool


@st.composite
def field_strategy(draw: st.DrawFn, lo: int, hi: int, star_weight: int = 1) -> Field:
    """A field's text and values; "*" ``star_weight`` times as likely as each other form."""
    span = hi - lo + 1
    kind = draw(st.sampled_from(["*"] * star_weight + ["one", "every", "range", "list"]))
    value = st.integers(lo, hi)
    if kind == "*":
        return Field("*", frozenset(range(lo, hi + 1)), True)
    if kind == "one":
        a = draw(value)
        return Field(str(a), frozenset([a]), False)
    if kind == "every":
        k = draw(st.integers(1, span))
        return Field(f"*/{k}", frozenset(range(lo, hi + 1, k)), False)
    if kind == "range":
        a, b = sorted((draw(value), draw(value)))
        k = draw(st.integers(1, span))
        text = f"{a}-{b}" + (f"/{k}" if k > 1 else "")
        return Field(text, frozenset(range(a, b + 1, k)), False)
    vs = draw(st.lists(value, min_size=2, max_size=4, unique=True))
    return Field(",".join(map(str, vs)), frozenset(vs), False)


@dataclass(frozen=True)
class Expr:
    fields: tuple[Field, ...]  # second, minute, hour, dom, month, dow
    five: bool

    @property
    def text(self) -> str:
        fields = self.fields[1:] if self.five else self.fields
        return " ".join(f.text for f in fields)

    def day_matches(self, d: datetime) -> bool:
        dom, month, dow = self.fields[3], self.fields[4], self.fields[5]
        if d.month not in month.values:
            return False
        in_dom = d.day in dom.values
        in_dow = (d.weekday() + 1) % 7 in {v % 7 for v in dow.values}
        if not dom.star and not dow.star:
            return in_dom or in_dow  # cron: both restricted means either
        return in_dom and in_dow


@st.composite
def expressions(draw: st.DrawFn) -> Expr:
    five = draw(st.booleans())
    # Seconds: keep dense second schedules rare so a window holds a bounded number of times.
    second = (
        Field("0", frozenset([0]), False)
        if five
        else draw(st.one_of(st.just(Field("0", frozenset([0]), False)), field_strategy(0, 59, 1)))
    )
    # Mostly "*" in the coarse fields, so that a window of hours sees fires.
    minute = draw(field_strategy(0, 59, star_weight=2))
    hour = draw(field_strategy(0, 23, star_weight=3))
    dom = draw(field_strategy(1, 31, star_weight=6))
    month = draw(field_strategy(1, 12, star_weight=8))
    dow = draw(field_strategy(0, 7, star_weight=4))
    return Expr((second, minute, hour, dom, month, dow), five)


def parse(expr: Expr, zone: str) -> CronSpec:
    try:
        return CronSpec.parse(expr.text, zone)
    except InvalidScheduleError as exc:
        assert "matches no date" in str(exc), str(exc)  # the only refusal a valid field gets
        assume(False)
        raise


@st.composite
def windows(draw: st.DrawFn, zone: str, max_hours: int = 26) -> tuple[float, float]:
    changes = transitions(zone)
    lo = int(datetime(YEARS[0], 1, 10, tzinfo=UTC).timestamp())
    hi = int(datetime(YEARS[1] - 1, 12, 20, tzinfo=UTC).timestamp())
    if changes and draw(st.integers(0, 4)) > 0:
        anchor = draw(st.sampled_from(changes))[0]  # mostly around an offset change
    else:
        anchor = draw(st.integers(lo, hi))
    hours = draw(st.sampled_from([h for h in (0.02, 0.5, 1, 2, 3, 6, 12, 26) if h <= max_hours]))
    span = int(hours * 3600) + draw(st.integers(0, 600))
    before = int(span * draw(st.sampled_from([0, 0.25, 0.5, 0.75, 1]))) + draw(st.integers(0, 90))
    after = anchor - before + draw(st.sampled_from([0, 0.5]))
    return after, after + span


def oracle_times(expr: Expr, zone: str, after: float, until: float, limit: int) -> list[int]:
    """The first ``limit`` fire instants in ``(after, until]`` by the oracle."""
    sec, minute, hour = expr.fields[0], expr.fields[1], expr.fields[2]
    z = ZoneInfo(zone)
    offsets = {_offset(z, int(after)), _offset(z, int(until))}
    for t, before, now in transitions(zone):
        if after - 2 * 86400 < t < until + 2 * 86400:
            offsets |= {before, now}
    wall = EPOCH + timedelta(seconds=int(after) + min(offsets) - 60)
    wall = wall.replace(second=0)
    last = EPOCH + timedelta(seconds=int(until) + max(offsets) + 60)
    found: set[int] = set()
    day_ok: dict[object, bool] = {}
    # Wall times map to instants in order, so the first `limit` come from the earliest walls.
    while wall <= last and len(found) <= limit:
        key = wall.date()
        if key not in day_ok:
            day_ok[key] = expr.day_matches(wall)
        if day_ok[key] and wall.hour in hour.values and wall.minute in minute.values:
            for s in sorted(sec.values):
                fire = oracle_instant(zone, wall.replace(second=s))
                if fire is not None and after < fire <= until:
                    found.add(fire)
        wall += timedelta(minutes=1)
    return sorted(found)[:limit]


def explained(spec: CronSpec, expr: Expr, zone: str, t: float) -> bool:
    """Whether ``t`` is a first occurrence of a matching wall time, or the first valid instant
    after a nonexistent matching wall time (the instant of a spring-forward change)."""
    z = ZoneInfo(zone)
    here = datetime.fromtimestamp(t, z)
    wall = here.replace(tzinfo=None)

    def matches(w: datetime) -> bool:
        f = expr.fields
        return (
            expr.day_matches(w)
            and w.hour in f[2].values
            and w.minute in f[1].values
            and w.second in f[0].values
        )

    if matches(wall) and oracle_instant(zone, wall) == int(t):
        return True
    gap = [(c, b, a) for c, b, a in transitions(zone) if c == int(t) and a > b]
    if not gap:
        return False
    _, before, after = gap[0]
    start = EPOCH + timedelta(seconds=int(t) + before)  # the gap's first wall time
    return any(matches(start + timedelta(seconds=i)) for i in range(after - before))


# --------------------------------------------------------------------------- properties

LIMIT = 1500


@PROPERTY
@given(data=st.data(), expr=expressions(), zone=st.sampled_from(ZONES))
def test_fire_times_are_the_oracles(data: st.DataObject, expr: Expr, zone: str) -> None:
    spec = parse(expr, zone)
    after, until = data.draw(windows(zone))
    got = list(spec.times_between(after, until, limit=LIMIT))
    event("fires" if got else "no fire in the window")
    crossed = [c for c, _, _ in transitions(zone) if got and got[0] <= c <= got[-1]]
    event("fires across an offset change" if crossed else "no offset change between fires")
    assert got == [float(t) for t in oracle_times(expr, zone, after, until, LIMIT)], expr.text
    assert all(a < b for a, b in itertools.pairwise(got))  # increasing, none doubled
    for t in got[:50]:
        assert t == int(t) and explained(spec, expr, zone, t), (expr.text, t)


@PROPERTY
@given(data=st.data(), expr=expressions(), zone=st.sampled_from(ZONES))
def test_next_after_and_prev_before_agree_with_times_between(
    data: st.DataObject, expr: Expr, zone: str
) -> None:
    spec = parse(expr, zone)
    after, until = data.draw(windows(zone, max_hours=4))
    listed = list(spec.times_between(after, until, limit=300))
    stepped: list[float] = []
    t: float | None = after
    while len(stepped) < 300:
        t = spec.next_after(t) if t is not None else None
        if t is None or t > until:
            break
        stepped.append(t)
    assert stepped == listed
    if listed and len(listed) < 300:
        back: list[float] = []
        u: float | None = until + 0.5
        while True:
            u = spec.prev_before(u) if u is not None else None
            if u is None or u <= after:
                break
            back.append(u)
        assert back[::-1] == listed
    assert spec.count_between(after, until, limit=300) == len(listed)


@PROPERTY
@given(
    data=st.data(),
    expr=expressions(),
    zone=st.sampled_from(ZONES),
    policy=st.sampled_from(["skip", "latest", "all"]),
    max_catchup=st.integers(1, 5),
    grace=st.sampled_from([0.0, 1.0, 60.0, 3600.0]),
)
def test_catchup_policies(
    data: st.DataObject, expr: Expr, zone: str, policy: str, max_catchup: int, grace: float
) -> None:
    assume(expr.fields[0].text == "0")  # minute-grained schedules: a few hundred due times
    spec = parse(expr, zone)
    after, now = data.draw(windows(zone, max_hours=6))
    due = list(spec.times_between(after, now))
    chosen = catchup_times(spec, after, now, policy, max_catchup, grace=grace)
    missed = [t for t in due if t < now - grace]
    current = [t for t in due if t >= now - grace]
    assert chosen == sorted(set(chosen)) and set(chosen) <= set(due)
    assert chosen[len(chosen) - len(current) :] == current  # current times always fire
    caught = chosen[: len(chosen) - len(current)]
    if policy == "skip":
        assert caught == []
    elif policy == "latest":
        assert caught == missed[-1:]
    else:
        assert caught == missed[-max_catchup:]
