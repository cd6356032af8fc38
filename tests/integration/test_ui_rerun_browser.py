"""The web UI's Rerun button in a real browser (Chromium, driven by Playwright): shown to
operators on a failed run's page only, asks first, and the run goes back to running and
completes with the failed task run again (upstream not run again)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from cloacina import Context, TaskError, task, workflow

from .server_support import Live, live_server
from .test_ui_browser import TIMEOUT, signed_in
from .ui_browser_support import browser, shots

pytestmark = pytest.mark.timeout(180)

__all__ = ["browser", "shots"]  # the fixtures, used by name


@pytest.fixture
def live(sqlite_url: str) -> Iterator[Live]:
    with live_server(sqlite_url) as served:
        yield served


def test_rerun_button_reruns_a_failed_run(
    browser: Browser, live: Live, name: Callable[[str], str]
) -> None:
    broken = [True]
    calls: list[str] = []

    flow_name = name("ui_rerun")

    @workflow(name=flow_name)
    class flow:
        @task()
        def fetch(context: Context) -> None:
            calls.append("fetch")
            context.insert("fetched", 1)

        @task(dependencies=[fetch])
        def store(context: Context) -> None:
            calls.append("store")
            if broken[0]:
                raise TaskError("the store is down", retryable=False)

    headers = {"Authorization": f"Bearer {live.api.keys['operator']}"}
    made = httpx.post(
        f"{live.base}/api/v1/executions",
        headers=headers,
        json={"workflow": flow_name, "context": {}},
    )
    assert made.status_code == 201, made.text
    eid = made.json()["execution_id"]
    deadline = time.monotonic() + 30
    while (
        httpx.get(f"{live.base}/api/v1/executions/{eid}", headers=headers).json()["status"]
        != "failed"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    viewer = signed_in(browser, live, "viewer")
    viewer.goto(f"/runs/{eid}")
    expect(viewer.locator("#run-status")).to_contain_text("failed")
    expect(viewer.get_by_role("button", name="Rerun")).to_have_count(0)

    operator = signed_in(browser, live, "operator")
    operator.goto(f"/runs/{eid}")
    expect(operator.locator("#run-status")).to_contain_text("failed")
    asked: list[str] = []
    answers = [False, True]  # the first time, the operator thinks better of it

    def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        if answers.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()

    operator.on("dialog", confirm)
    button = operator.get_by_role("button", name="Rerun")
    button.click()
    operator.wait_for_timeout(300)
    assert calls == ["fetch", "store"]  # dismissed: nothing happened
    expect(operator.locator("#run-status")).to_contain_text("failed")
    broken[0] = False
    button.click()
    expect(operator.get_by_role("status")).to_contain_text("rerun", timeout=TIMEOUT)
    expect(operator.locator("#run-status")).to_contain_text("completed", timeout=TIMEOUT)
    assert asked == ["Rerun the failed and cancelled tasks of this run (and their dependents)?"] * 2
    assert calls == ["fetch", "store", "store"]  # upstream kept
    expect(operator.get_by_role("button", name="Rerun")).to_have_count(0)
