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
    max_examples=int(os.environ.get("CLOACINA_CRON_EXAMPLES", "60")),
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


def field_strategy(lo: int, hi: int, allow_star: bool = True) -> st.SearchStrategy[Field]:
    span = hi - lo + 1
    value = st.integers(lo, hi)
    star = st.just(Field("*", frozenset(range(lo, hi + 1)), True))
    every = st.integers(1, span).map(
        lambda k: Field(f"*/{k}", frozenset(range(lo, hi + 1, k)), False)
    )
    single = value.map(lambda a: Field(str(a), frozenset([a]), False))
    ranges = st.tuples(value, value, st.integers(1, span)).map(
        lambda r: Field(
            f"{min(r[0], r[1])}-{max(r[0], r[1])}" + (f"/{r[2]}" if r[2] > 1 else ""),
            frozenset(range(min(r[0], r[1]), max(r[0], r[1]) + 1, r[2])),
            False,
        )
    )
    lists = st.lists(value, min_size=2, max_size=4, unique=True).map(
        lambda vs: Field(",".join(map(str, vs)), frozenset(vs), False)
    )
    options = [single, every, ranges, lists]
    return st.one_of(star, *options) if allow_star else st.one_of(*options)


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
        else draw(
            st.one_of(
                st.just(Field("0", frozenset([0]), False)),
                field_strategy(0, 59, allow_star=False),
                st.just(Field("*", frozenset(range(60)), True)),
            )
        )
    )
    minute = draw(field_strategy(0, 59))
    hour = draw(field_strategy(0, 23))
    # Days and months mostly "*" so that hours-long windows see fires.
    dom = draw(st.one_of(st.just(Field("*", frozenset(range(1, 32)), True)), field_strategy(1, 31)))
    month = draw(
        st.one_of(st.just(Field("*", frozenset(range(1, 13)), True)), field_strategy(1, 12))
    )
    # "*/k" in one day field beside a restricted other is read differently by cron flavours.
    dow = draw(st.one_of(st.just(Field("*", frozenset(range(7)), True)), field_strategy(0, 6)))
    if not dom.star and not dow.star:
        assume(not dom.text.startswith("*") and not dow.text.startswith("*"))
    return Expr((second, minute, hour, dom, month, dow), five)


def parse(expr: Expr, zone: str) -> CronSpec:
    try:
        return CronSpec.parse(expr.text, zone)
    except InvalidScheduleError as exc:
        assert "matches no date" in str(exc), str(exc)  # the only refusal a valid field gets
        assume(False)
        raise


@st.composite
def windows(draw: st.DrawFn, zone: str, max_hours: int = 8) -> tuple[float, float]:
    changes = transitions(zone)
    lo = int(datetime(YEARS[0], 1, 10, tzinfo=UTC).timestamp())
    hi = int(datetime(YEARS[1] - 1, 12, 20, tzinfo=UTC).timestamp())
    if changes and draw(st.integers(0, 4)) > 0:
        anchor = draw(st.sampled_from(changes))[0]  # mostly around an offset change
    else:
        anchor = draw(st.integers(lo, hi))
    after = anchor - draw(st.integers(0, max_hours * 3600)) + draw(st.sampled_from([0, 0.5]))
    span = draw(st.integers(1, max_hours * 3600))
    return after, after + span


def oracle_times(expr: Expr, zone: str, after: float, until: float) -> list[int]:
    sec, minute, hour = expr.fields[0], expr.fields[1], expr.fields[2]
    wall = EPOCH + timedelta(seconds=int(after)) - timedelta(hours=15)
    wall = wall.replace(second=0)
    last = EPOCH + timedelta(seconds=int(until)) + timedelta(hours=15)
    found: set[int] = set()
    day_ok: dict[object, bool] = {}
    while wall <= last:
        key = wall.date()
        if key not in day_ok:
            day_ok[key] = expr.day_matches(wall)
        if day_ok[key] and wall.hour in hour.values and wall.minute in minute.values:
            for s in sec.values:
                t = oracle_instant(zone, wall.replace(second=s))
                if t is not None and after < t <= until:
                    found.add(t)
        wall += timedelta(minutes=1)
    return sorted(found)


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
    assert got == [float(t) for t in oracle_times(expr, zone, after, until)[:LIMIT]], expr.text
    assert all(a < b for a, b in itertools.pairwise(got))  # increasing, none doubled
    for t in got[:50]:
        assert t == int(t) and explained(spec, expr, zone, t), (expr.text, t)


@PROPERTY
@given(data=st.data(), expr=expressions(), zone=st.sampled_from(ZONES))
def test_next_after_and_prev_before_agree_with_times_between(
    data: st.DataObject, expr: Expr, zone: str
) -> None:
    spec = parse(expr, zone)
    after, until = data.draw(windows(zone, max_hours=3))
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
