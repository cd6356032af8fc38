"""A cancelled run says why it was cancelled (issue 9, item 13)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable

import pytest

from cloacina import Context, DefaultRunner, task, workflow

pytestmark = pytest.mark.timeout(60)


def _hold(runner: DefaultRunner, wf_name: str) -> str:
    started = threading.Event()

    @workflow(name=wf_name)
    class Hold:
        @task
        async def hold(context: Context) -> None:
            started.set()
            await asyncio.sleep(30)

    eid = runner.schedule_workflow(wf_name)
    assert started.wait(10)
    return eid


def _cancel_event_detail(runner: DefaultRunner, eid: str) -> dict[str, object]:
    event = next(e for e in runner.store.get_events(eid) if e.event == "execution_cancelled")
    detail = json.loads(event.detail or "{}")
    assert isinstance(detail, dict)
    return detail


def test_cancel_with_a_reason_stores_it_as_the_error(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    eid = _hold(runner, name("reason"))
    runner.cancel(eid, reason="timed out after 2s")
    result = runner.wait(eid, timeout=10)
    assert result.status == "cancelled"
    assert result.error == "timed out after 2s"
    assert _cancel_event_detail(runner, eid)["reason"] == "timed out after 2s"


def test_cancel_without_a_reason_says_by_request(
    runner: DefaultRunner, name: Callable[[str], str]
) -> None:
    eid = _hold(runner, name("no_reason"))
    runner.cancel(eid)
    assert runner.wait(eid, timeout=10).error == "cancelled by request"
    assert _cancel_event_detail(runner, eid)["reason"] == "cancelled by request"


def test_cancel_async_passes_the_reason(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    eid = _hold(runner, name("async_reason"))
    asyncio.run(runner.cancel_async(eid, reason="interrupted"))
    assert runner.wait(eid, timeout=10).error == "interrupted"
