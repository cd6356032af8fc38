"""The pure time rules of cron schedules (model/cron.py): concrete DST cases, error messages,
catch-up policies and the ``cron(...)`` declaration. Property tests: test_cron_properties.py.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import cloacina
from cloacina.errors import InvalidScheduleError, RequestError
from cloacina.model.cron import (
    CronSchedule,
    CronSpec,
    catchup_times,
    cron,
    to_instant,
    validate_timezone,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def local_iso(spec: CronSpec, times: list[float]) -> list[str]:
    return [spec.local(t).isoformat() for t in times]


def utc_iso(times: list[float]) -> list[str]:
    return [datetime.fromtimestamp(t, UTC).strftime("%m-%dT%H:%M:%S") for t in times]


# --------------------------------------------------------------------------- DST: daily


def test_berlin_spring_forward_nonexistent_time_fires_once_at_three() -> None:
    spec = CronSpec.parse("30 2 * * *", "Europe/Berlin")
    times = list(spec.times_between(utc(2026, 3, 27), utc(2026, 3, 31)))
    assert local_iso(spec, times) == [
        "2026-03-27T02:30:00+01:00",
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist: the first valid instant after
        "2026-03-30T02:30:00+02:00",
    ]
    assert utc_iso(times)[2] == "03-29T01:00:00"


def test_berlin_fall_back_ambiguous_time_fires_once_at_first_occurrence() -> None:
    spec = CronSpec.parse("30 2 * * *", "Europe/Berlin")
    times = list(spec.times_between(utc(2026, 10, 24), utc(2026, 10, 27)))
    assert local_iso(spec, times) == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",  # CEST, the first of the two 02:30s; CET's fires nothing
        "2026-10-26T02:30:00+01:00",
    ]
    # Asked from inside the repeated hour (02:10 CET), the next time is the next day's.
    assert spec.next_after(utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 30)
    # Asked from between the two 02:30s, the previous one is the first occurrence.
    assert spec.prev_before(utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 0, 30)


def test_new_york_both_transitions() -> None:
    spec = CronSpec.parse("30 2 * * *", "America/New_York")
    spring = list(spec.times_between(utc(2026, 3, 7), utc(2026, 3, 10)))
    assert local_iso(spec, spring) == [
        "2026-03-07T02:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]
    fall = CronSpec.parse("30 1 * * *", "America/New_York")
    times = list(fall.times_between(utc(2026, 10, 31), utc(2026, 11, 3)))
    assert local_iso(fall, times) == [
        "2026-10-31T01:30:00-04:00",
        "2026-11-01T01:30:00-04:00",  # EDT: first occurrence only
        "2026-11-02T01:30:00-05:00",
    ]


def test_lord_howe_half_hour_shift() -> None:
    # Spring forward 2026-10-04 02:00 -> 02:30 (+10:30 -> +11): 02:00 and 02:15 do not exist.
    spec = CronSpec.parse("0,15,45 2 * * *", "Australia/Lord_Howe")
    times = list(spec.times_between(utc(2026, 10, 3, 12), utc(2026, 10, 4, 12)))
    assert local_iso(spec, times) == [
        "2026-10-04T02:30:00+11:00",  # 02:00 and 02:15, both once, at the first valid instant
        "2026-10-04T02:45:00+11:00",
    ]
    # Fall back 2026-04-05 02:00 -> 01:30 (+11 -> +10:30): 01:45 happens twice, fires once.
    back = CronSpec.parse("45 1 * * *", "Australia/Lord_Howe")
    times = list(back.times_between(utc(2026, 4, 4, 6), utc(2026, 4, 5, 12)))
    assert local_iso(back, times) == ["2026-04-05T01:45:00+11:00"]
    hourly = CronSpec.parse("@hourly", "Australia/Lord_Howe")
    times = list(hourly.times_between(utc(2026, 4, 4, 13), utc(2026, 4, 4, 17)))
    assert local_iso(hourly, times) == [
        "2026-04-05T01:00:00+11:00",
        "2026-04-05T02:00:00+10:30",  # 90 real minutes later: 01:00-01:59 +10:30 fires nothing
        "2026-04-05T03:00:00+10:30",
    ]


def test_kathmandu_quarter_hour_offset() -> None:
    spec = CronSpec.parse("0 9 * * *", "Asia/Kathmandu")
    assert utc_iso(list(spec.times_between(utc(2026, 6, 1), utc(2026, 6, 3)))) == [
        "06-01T03:15:00",
        "06-02T03:15:00",
    ]


# --------------------------------------------------------------------------- DST: dense


@pytest.mark.parametrize(
    ("expr", "spring", "fall"),
    [
        ("* * * * *", 23 * 60, 24 * 60),
        ("*/15 * * * *", 23 * 4, 24 * 4),
        ("0 * * * *", 23, 24),
        ("0 */20 * * * *", 23 * 3, 24 * 3),  # seconds first: every 20 minutes
    ],
)
def test_dense_schedules_across_both_berlin_transitions(expr: str, spring: int, fall: int) -> None:
    spec = CronSpec.parse(expr, "Europe/Berlin")
    zone = ZoneInfo("Europe/Berlin")

    def day(d: datetime) -> list[float]:  # the fire times of one local day
        start = d.replace(tzinfo=zone).timestamp() - 1
        end = (d + timedelta(days=1)).replace(tzinfo=zone).timestamp() - 1
        return list(spec.times_between(start, end))

    spring_day = day(datetime(2026, 3, 29))
    fall_day = day(datetime(2026, 10, 25))
    assert len(spring_day) == spring  # the 23 real hours: the skipped hour fires once at 03:00
    assert len(fall_day) == fall  # the repeated hour fires once, not twice
    for times in (spring_day, fall_day):
        assert times == sorted(set(times))
    # Every fire of the fall-back day is a first occurrence (CEST before 03:00).
    for t in fall_day:
        here = spec.local(t)
        assert here.fold == 0 or here.hour != 2


def test_every_minute_around_spring_forward() -> None:
    spec = CronSpec.parse("* * * * *", "Europe/Berlin")
    times = list(spec.times_between(utc(2026, 3, 29, 0, 57), utc(2026, 3, 29, 1, 2)))
    assert local_iso(spec, times) == [
        "2026-03-29T01:58:00+01:00",
        "2026-03-29T01:59:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00..02:59 and 03:00 itself: one fire
        "2026-03-29T03:01:00+02:00",
        "2026-03-29T03:02:00+02:00",
    ]


def test_every_minute_around_fall_back() -> None:
    spec = CronSpec.parse("* * * * *", "America/New_York")
    # 2026-11-01: 01:00-01:59 EDT (05:00-05:59 UTC) then again EST (06:00-06:59 UTC).
    times = list(spec.times_between(utc(2026, 11, 1, 5, 57), utc(2026, 11, 1, 7, 1)))
    assert utc_iso(times) == [
        "11-01T05:58:00",
        "11-01T05:59:00",
        "11-01T07:00:00",  # 06:00-06:59 UTC is 01:00-01:59 again: no second fire
        "11-01T07:01:00",
    ]


def test_every_second_through_gap_and_fold_is_quick() -> None:
    spec = CronSpec.parse("* * * * * *", "Europe/Berlin")
    times = list(spec.times_between(utc(2026, 3, 29, 0, 59, 58), utc(2026, 3, 29, 1, 0, 2)))
    assert utc_iso(times) == [
        "03-29T00:59:59",
        "03-29T01:00:00",
        "03-29T01:00:01",
        "03-29T01:00:02",
    ]
    # From inside the repeated hour the next second is the end of it, the previous is the
    # last second of the first occurrence.
    inside = utc(2026, 10, 25, 1, 30)
    assert spec.next_after(inside) == utc(2026, 10, 25, 2, 0)
    assert spec.prev_before(inside) == utc(2026, 10, 25, 0, 59, 59)


# --------------------------------------------------------------------------- basics


def test_next_after_is_strictly_after_and_whole_seconds() -> None:
    spec = CronSpec.parse("*/5 * * * *")
    assert spec.next_after(utc(2026, 1, 1, 10, 0)) == utc(2026, 1, 1, 10, 5)
    assert spec.next_after(utc(2026, 1, 1, 10, 0) - 0.25) == utc(2026, 1, 1, 10, 0)
    assert spec.prev_before(utc(2026, 1, 1, 10, 0)) == utc(2026, 1, 1, 9, 55)
    assert spec.prev_before(utc(2026, 1, 1, 10, 0) + 0.25) == utc(2026, 1, 1, 10, 0)


def test_six_fields_are_seconds_first() -> None:
    spec = CronSpec.parse("30 0 12 * * *")
    assert utc_iso([spec.next_after(utc(2026, 1, 1))]) == ["01-01T12:00:30"]  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("alias", "same_as"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
    ],
)
def test_aliases(alias: str, same_as: str) -> None:
    a = CronSpec.parse(alias, "Europe/Berlin")
    b = CronSpec.parse(same_as, "Europe/Berlin")
    start, end = utc(2026, 1, 1), utc(2028, 1, 1)
    assert list(a.times_between(start, end, limit=50)) == list(b.times_between(start, end, 50))


def test_names_lists_ranges_steps_and_extensions() -> None:
    spec = CronSpec.parse("0 9 * jan-mar mon-fri")
    times = list(spec.times_between(utc(2026, 1, 1), utc(2026, 1, 8)))
    assert [datetime.fromtimestamp(t, UTC).weekday() for t in times] == [3, 4, 0, 1, 2]
    last = CronSpec.parse("0 0 L * *")
    assert utc_iso(list(last.times_between(utc(2026, 1, 1), utc(2026, 3, 1)))) == [
        "01-31T00:00:00",
        "02-28T00:00:00",
    ]
    second_monday = CronSpec.parse("0 0 * * mon#2")
    assert utc_iso([second_monday.next_after(utc(2026, 1, 1))]) == ["01-12T00:00:00"]  # type: ignore[list-item]
    sunday7 = CronSpec.parse("0 0 * * 7")
    assert datetime.fromtimestamp(sunday7.next_after(utc(2026, 1, 1)) or 0, UTC).weekday() == 6


def test_times_in_count_between_and_limit() -> None:
    spec = CronSpec.parse("0 * * * *")
    start, end = utc(2026, 1, 1, 0), utc(2026, 1, 1, 5)
    assert len(list(spec.times_between(start, end))) == 5  # 01..05
    assert len(list(spec.times_in(start, end))) == 6  # 00..05
    assert spec.count_between(start, end) == 5
    assert spec.count_between(start, utc(2040, 1, 1), limit=1_001) == 1_001


def test_end_of_time_is_none_not_an_error() -> None:
    spec = CronSpec.parse("0 0 1 1 *")
    assert spec.next_after(utc(9999, 6, 1)) is None
    assert list(spec.times_between(utc(9998, 6, 1), utc(9999, 12, 31))) == [utc(9999, 1, 1)]


def test_equality_and_export() -> None:
    assert CronSpec.parse("0 2 * * *", "Europe/Berlin") == CronSpec.parse(
        " 0 2 * * * ", "Europe/Berlin"
    )
    assert cloacina.cron is cron and cloacina.InvalidScheduleError is InvalidScheduleError


# --------------------------------------------------------------------------- errors


def _error(expr: str, timezone: str = "UTC") -> InvalidScheduleError:
    with pytest.raises(InvalidScheduleError) as info:
        CronSpec.parse(expr, timezone)
    assert isinstance(info.value, RequestError) and isinstance(info.value, ValueError)
    return info.value


def test_bad_field_names_field_index_and_column() -> None:
    err = _error("0 61 * * *")
    assert (err.field, err.field_index, err.column) == ("hour", 2, 3)
    assert "field 2 (hour) at column 3" in str(err) and "61 is out of range 0-23" in str(err)
    err = _error("*/5  *  *  foo  *")
    assert (err.field, err.field_index, err.column) == ("month", 4, 12)
    assert "'foo'" in str(err) and "jan" in str(err)
    err = _error("0 0 1,,2 * *")
    assert (err.field_index, err.column) == (3, 7) and "empty item" in str(err)
    err = _error("0 0 0 * * 3-1")
    assert (err.field, err.field_index, err.column) == ("day of week", 6, 11)
    assert "backwards" in str(err)
    err = _error("*/0 * * * *")
    assert err.field == "minute" and "step 0" in str(err)
    err = _error("60 * * * * *")
    assert err.field == "second" and "0-59" in str(err)
    err = _error("H * * * *")
    assert err.field == "minute"


def test_field_count() -> None:
    err = _error("* * * * * * *")
    assert "7 fields" in str(err) and "5 or 6" in str(err) and err.column == 13
    err = _error("* * *")
    assert "3 fields" in str(err)
    assert "empty" in str(_error("   "))


def test_bad_alias_names_the_nearest() -> None:
    err = _error("@dayly")
    assert "unknown alias '@dayly'" in str(err) and "'@daily'" in str(err)
    assert "@reboot" in str(_error("@reboot"))


def test_expression_that_matches_no_date() -> None:
    err = _error("0 0 30 2 *")
    assert err.field == "day of month" and "matches no date" in str(err)


@pytest.mark.parametrize(
    ("zone", "nearest"),
    [
        ("Europe/Berln", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("Berlin", "Europe/Berlin"),
        ("Kathmandu", "Asia/Kathmandu"),
        ("America/New York", "America/New_York"),
        ("Australia/LordHowe", "Australia/Lord_Howe"),
    ],
)
def test_bad_zone_names_the_nearest_valid_zone(zone: str, nearest: str) -> None:
    err = _error("* * * * *", zone)
    assert err.timezone == zone and err.suggestion == nearest
    assert f"unknown time zone {zone!r}" in str(err) and f"Did you mean {nearest!r}" in str(err)


def test_zone_without_a_near_name() -> None:
    err = _error("* * * * *", "Not/AZoneAtAllXYZQ")
    assert "unknown time zone" in str(err) and "IANA" in str(err)
    assert validate_timezone("Asia/Kathmandu").key == "Asia/Kathmandu"


# --------------------------------------------------------------------------- catch-up


HOURLY = CronSpec.parse("0 * * * *")


def _catchup(policy: str, now: float, max_catchup: int = 100, **kw: float) -> list[str]:
    times = catchup_times(HOURLY, utc(2026, 1, 1, 0), now, policy, max_catchup, **kw)
    return utc_iso(times)


def test_catchup_after_downtime() -> None:
    now = utc(2026, 1, 1, 5, 30)  # 01..05 are missed
    assert _catchup("skip", now) == []
    assert _catchup("latest", now) == ["01-01T05:00:00"]
    assert _catchup("all", now) == [f"01-01T0{h}:00:00" for h in range(1, 6)]
    assert _catchup("all", now, max_catchup=2) == ["01-01T04:00:00", "01-01T05:00:00"]


def test_catchup_current_time_is_not_missed() -> None:
    now = utc(2026, 1, 1, 5, 0, 20)  # 05:00 became due 20 s ago: current, not missed
    assert _catchup("skip", now) == ["01-01T05:00:00"]
    assert _catchup("latest", now) == ["01-01T04:00:00", "01-01T05:00:00"]
    assert _catchup("all", now, max_catchup=1) == ["01-01T04:00:00", "01-01T05:00:00"]
    assert _catchup("skip", now, grace=10) == []  # a tighter grace: 20 s late is missed
    assert _catchup("skip", utc(2026, 1, 1, 0, 30)) == []  # nothing due


def test_catchup_respects_start_and_end() -> None:
    now = utc(2026, 1, 1, 5, 30)
    assert _catchup("all", now, start=utc(2026, 1, 1, 3)) == [
        "01-01T03:00:00",
        "01-01T04:00:00",
        "01-01T05:00:00",
    ]
    assert _catchup("latest", now, end=utc(2026, 1, 1, 2, 30)) == ["01-01T02:00:00"]


def test_catchup_bad_arguments() -> None:
    with pytest.raises(InvalidScheduleError, match="catch-up policy 'some'"):
        catchup_times(HOURLY, 0, 10, "some", 1)
    with pytest.raises(InvalidScheduleError, match="at least 1"):
        catchup_times(HOURLY, 0, 10, "all", 0)


# --------------------------------------------------------------------------- declarations


def test_cron_declaration() -> None:
    sched = cron(
        "0 2 * * *",
        "Europe/Berlin",
        name="nightly",
        context={"k": 1},
        catchup="latest",
        max_catchup=5,
        start=datetime(2026, 3, 29, 2, 30),  # naive: a wall time in the zone (nonexistent)
        end="2026-12-31T00:00:00+00:00",
    )
    assert isinstance(sched, CronSchedule)
    assert sched.start == utc(2026, 3, 29, 1, 0)  # the first valid instant after 02:30
    assert sched.end == utc(2026, 12, 31)
    assert sched.spec == CronSpec.parse("0 2 * * *", "Europe/Berlin")
    assert CronSchedule.from_dict(sched.to_dict()) == sched


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expr": "0 25 * * *"}, "out of range 0-23"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"catchup": "never"}, "catch-up policy"),
        ({"max_catchup": 0}, "at least 1"),
        ({"context": {"x": object()}}, "JSON"),
        ({"start": "2026-02-01", "end": "2026-01-01"}, "after its end"),
        ({"start": "yesterday"}, "ISO-8601"),
        ({"name": ""}, "non-empty"),
    ],
)
def test_cron_declaration_refuses_bad_input(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"expr": "@daily", **kwargs}
    with pytest.raises(InvalidScheduleError, match=message):
        cron(**args)  # type: ignore[arg-type]


def test_to_instant() -> None:
    assert to_instant(5) == 5.0
    assert to_instant("2026-01-01T00:00:00Z") == utc(2026, 1, 1)
    assert to_instant(datetime(2026, 10, 25, 2, 30), "Europe/Berlin") == utc(2026, 10, 25, 0, 30)
    assert to_instant(datetime(2026, 1, 1, 0, 0, 0, 500_000)) == utc(2026, 1, 1) + 0.5


# --------------------------------------------------------------------------- croniter's quirks


def test_single_value_ranges_are_not_every_value() -> None:
    # croniter alone reads "5-5" (and "0-0") as "*"; we give it explicit lists.
    spec = CronSpec.parse("5-5 * * * *")
    times = list(spec.times_between(utc(2026, 1, 1), utc(2026, 1, 1, 3)))
    assert utc_iso(times) == ["01-01T00:05:00", "01-01T01:05:00", "01-01T02:05:00"]
    seconds = CronSpec.parse("0-0 * * * * *")
    assert seconds.next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 0, 1)


def test_day_of_month_and_day_of_week_rule() -> None:
    start, end = utc(2026, 1, 1), utc(2026, 2, 1)

    def days(expr: str) -> list[int]:
        spec = CronSpec.parse(expr)
        return [datetime.fromtimestamp(t, UTC).day for t in spec.times_in(start, end - 1)]

    assert days("0 0 13 * *") == [13]  # the day of week is "*": day of month only
    assert days("0 0 * * fri") == [2, 9, 16, 23, 30]  # and the other way round
    assert days("0 0 13 * fri") == [2, 9, 13, 16, 23, 30]  # both restricted: either
    assert days("0 0 ? * fri") == [2, 9, 16, 23, 30]  # "?" is "*"
    assert len(days("0 0 1-31 * fri")) == 31  # restricted, yet every day: so every day
    assert days("0 0 */10 * fri") == [1, 2, 9, 11, 16, 21, 23, 30, 31]


def test_hash_day_of_week_beside_a_day_of_month_is_refused() -> None:
    err = _error("0 0 15 * mon#1")
    assert err.field == "day of month" and "'#'" in str(err)
    err = _error("0 0 * * mon#6")
    assert err.field == "day of week" and "1-5" in str(err)


def test_without_croniter_fields_are_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # A package's worker process may lack croniter: declarations still validate there.
    monkeypatch.setitem(sys.modules, "croniter", None)  # makes "import croniter" fail
    assert cron("*/5 * * * *", "Europe/Berlin").expression == "*/5 * * * *"
    assert _error("0 61 * * *").field_index == 2
    with pytest.raises(ImportError, match="pip install croniter"):
        CronSpec.parse("@daily").next_after(0)


def test_zone_that_is_not_a_string() -> None:
    with pytest.raises(InvalidScheduleError, match="unknown time zone"):
        CronSpec.parse("@daily", ["Europe/Berlin"])  # type: ignore[arg-type]
    with pytest.raises(InvalidScheduleError, match="must be a string"):
        CronSpec.parse(5)  # type: ignore[arg-type]


def test_offset_changes_that_are_not_dst() -> None:
    # Sao Paulo sprang forward at midnight (2018-11-04 00:00 -> 01:00): a daily midnight
    # schedule fires at 01:00 that day.
    spec = CronSpec.parse("@daily", "America/Sao_Paulo")
    times = list(spec.times_between(utc(2018, 11, 3, 2), utc(2018, 11, 5, 4)))
    assert local_iso(spec, times) == [
        "2018-11-03T00:00:00-03:00",
        "2018-11-04T01:00:00-02:00",
        "2018-11-05T00:00:00-02:00",
    ]
    # Kathmandu moved from +05:30 to +05:45 at 1986-01-01 00:00: 00:00-00:14 never happened.
    spec = CronSpec.parse("0,10,20 0 * * *", "Asia/Kathmandu")
    times = list(spec.times_between(utc(1985, 12, 31, 12), utc(1986, 1, 1, 12)))
    assert local_iso(spec, times) == ["1986-01-01T00:15:00+05:45", "1986-01-01T00:20:00+05:45"]


@pytest.mark.parametrize("t", [float("nan"), float("inf"), float("-inf"), 1e20, -1e20, -1e11])
def test_extreme_instants_give_none_not_errors(t: float) -> None:
    spec = CronSpec.parse("* * * * * *", "Europe/Berlin")
    assert spec.next_after(t) is None
    assert spec.prev_before(t) is None
    assert list(spec.times_between(t, t + 10)) == []
    assert spec.prev_before(1e11) is not None  # year 5138: still in range


def test_day_of_week_steps_cover_the_week_once() -> None:
    def weekdays(expr: str) -> set[int]:  # cron numbering: 0 = Sunday
        spec = CronSpec.parse(expr)
        times = spec.times_between(utc(2026, 1, 1), utc(2026, 1, 15))
        return {(datetime.fromtimestamp(t, UTC).weekday() + 1) % 7 for t in times}

    assert weekdays("0 0 * * 1/2") == {1, 3, 5}  # not Sunday as "7"
    assert weekdays("0 0 * * */2") == {0, 2, 4, 6}
    assert weekdays("0 0 * * 1-7/2") == {1, 3, 5, 0}  # 7 written out is Sunday
    assert weekdays("0 0 * * 5-7") == {5, 6, 0}
