from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloacina.clock import SYSTEM_CLOCK, Clock
from cloacina.testing import FakeClock


def test_fake_clock_moves_only_when_told_and_wakes_listeners() -> None:
    clock = FakeClock(datetime(2026, 3, 29, 0, 0, tzinfo=UTC))
    assert isinstance(clock, Clock) and not clock.shared_with_database
    start = clock.now()
    assert clock.now() == start
    woken: list[float] = []
    unsubscribe = clock.on_jump(lambda: woken.append(clock.now()))
    clock.advance(timedelta(hours=1))
    assert clock.now() == start + 3600 and woken == [start + 3600]
    clock.set(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.as_datetime() == datetime(2026, 1, 1, tzinfo=UTC)
    unsubscribe()
    clock.advance(5)
    assert len(woken) == 2


def test_fake_clock_refuses_naive_times_and_backward_steps() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        FakeClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="positive step"):
        FakeClock(0).advance(-1)


def test_system_clock_is_a_clock() -> None:
    assert isinstance(SYSTEM_CLOCK, Clock) and SYSTEM_CLOCK.shared_with_database
    assert abs(SYSTEM_CLOCK.now() - datetime.now(UTC).timestamp()) < 5
