"""The web UI in a real browser (Chromium, driven by Playwright) against a real server
(uvicorn on a free port) over SQLite: sign in, the runs list and its live updates, filters
and paging, a run's page and its buttons by role."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from cloacina import Context, task, workflow

from .server_support import Live, live_server
from .ui_browser_support import browser, shots

pytestmark = pytest.mark.timeout(180)

__all__ = ["browser", "shots"]  # the fixtures, used by name

TIMEOUT = 20_000  # ms a page may take to show what a test waits for (CI is loaded)
expect.set_options(timeout=TIMEOUT)  # expect() has its own default (5 s)


class Gate:
    """A workflow whose one task waits until the test opens the gate (or 30 s)."""

    def __init__(self, name: Callable[[str], str]) -> None:
        self.event = threading.Event()
        self.flow = name("ui_gate")
        gate = self.event

        @workflow(name=self.flow)
        class flow:
            @task()
            def held(context: Context) -> None:
                gate.wait(30)

    def start(self, live: Live) -> str:
        answer = httpx.post(
            f"{live.base}/api/v1/executions",
            headers={"Authorization": f"Bearer {live.api.keys['operator']}"},
            json={"workflow": self.flow, "context": {}},
        )
        assert answer.status_code == 201, answer.text
        execution_id: str = answer.json()["execution_id"]
        return execution_id


@pytest.fixture
def gate(name: Callable[[str], str]) -> Iterator[Gate]:
    made = Gate(name)
    try:
        yield made
    finally:
        made.event.set()


@pytest.fixture
def live(sqlite_url: str, gate: Gate) -> Iterator[Live]:
    with live_server(sqlite_url) as served:
        yield served
        gate.event.set()


def signed_in(browser: Browser, live: Live, who: str) -> Page:
    context = browser.new_context(base_url=live.base, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto("/")
    page.fill("#api_key", live.api.keys[who])
    page.press("#api_key", "Enter")
    page.wait_for_url("**/runs")
    return page


def test_sign_in_and_cookie(browser: Browser, live: Live, shots: Path) -> None:
    context = browser.new_context(base_url=live.base)
    page = context.new_page()
    page.goto("/")
    page.fill("#api_key", "clk_" + "x" * 43)
    page.press("#api_key", "Enter")
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    page.screenshot(path=str(shots / "signin.png"))
    assert context.cookies() == []

    page.fill("#api_key", live.api.keys["viewer"])
    page.press("#api_key", "Enter")
    page.wait_for_url("**/runs")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    (cookie,) = context.cookies()
    assert cookie["name"] == "cloacina_session"
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain HTTP on loopback
    assert live.api.keys["viewer"] not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script sees it

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(live.base + "/")
    assert context.cookies() == []
    context.close()


def test_runs_listed_live_with_working_links(
    browser: Browser, live: Live, gate: Gate, shots: Path
) -> None:
    first = gate.start(live)
    page = signed_in(browser, live, "viewer")
    row = page.locator(f'tr[data-id="{first}"]')
    expect(row).to_contain_text("running")
    page.evaluate("window.notReloaded = true")

    second = gate.start(live)  # started through the API while the page is open
    fresh = page.locator(f'tr[data-id="{second}"]')
    expect(fresh).to_be_visible()
    expect(fresh).to_contain_text("running")
    assert page.locator("#runs tr").first.get_attribute("data-id") == second
    expect(page.locator("#runs-news")).to_contain_text("1 new run")  # told to screen readers
    assert page.evaluate("window.notReloaded") is True

    gate.event.set()  # both runs finish: their rows turn to completed, still no reload
    expect(row).to_contain_text("completed")
    expect(fresh).to_contain_text("completed")
    expect(page.locator("[data-count=completed]")).to_have_text("2")  # counts follow
    expect(page.locator("[data-count=running]")).to_have_text("0")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(shots / "runs.png"))

    fresh.get_by_role("link", name=second[:8]).click()
    page.wait_for_url(f"**/runs/{second}")
    expect(page.locator('tr[data-task="held"]')).to_contain_text("completed")
    expect(page.locator("#run-status")).to_contain_text("completed")
    page.screenshot(path=str(shots / "run.png"))


def test_filters_and_paging(browser: Browser, live: Live, gate: Gate) -> None:
    gate.event.set()
    ids = [gate.start(live) for _ in range(3)]
    runner = live.api.state.primary
    for execution_id in ids:
        runner.wait(execution_id, timeout=20)
    page = signed_in(browser, live, "viewer")
    expect(page.locator("[data-count=completed]")).to_have_text("3")

    page.goto("/runs?limit=2")
    expect(page.locator("#runs tr")).to_have_count(2)
    page.get_by_role("link", name="Older").click()
    expect(page.locator("#runs tr")).to_have_count(1)
    expect(page.locator(f'tr[data-id="{ids[0]}"]')).to_be_visible()

    page.goto("/runs")
    page.select_option("select[name=status]", "failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No runs match.")).to_be_visible()
    page.select_option("select[name=status]", "completed")
    page.fill("input[name=q]", ids[1][:10])
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#runs tr")).to_have_count(1)
    expect(page.locator(f'tr[data-id="{ids[1]}"]')).to_contain_text("completed")


def test_buttons_by_role_and_cancel(browser: Browser, live: Live, gate: Gate) -> None:
    execution_id = gate.start(live)
    viewer = signed_in(browser, live, "viewer")
    viewer.goto(f"/runs/{execution_id}")
    expect(viewer.locator("#run-status")).to_contain_text("running")
    expect(viewer.get_by_role("button", name="Cancel")).to_have_count(0)
    # A forged post from the viewer's own session (no CSRF token) is refused.
    status: Any = viewer.evaluate(
        "(url) => fetch(url, {method: 'POST', body: new URLSearchParams()}).then(r => r.status)",
        f"/runs/{execution_id}/cancel",
    )
    assert status == 403

    operator = signed_in(browser, live, "operator")
    operator.goto(f"/runs/{execution_id}")
    asked: list[str] = []

    def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    operator.on("dialog", confirm)
    operator.get_by_role("button", name="Cancel").click()
    expect(operator.get_by_role("status")).to_contain_text("cancel")
    expect(operator.locator("#run-status")).to_contain_text("cancelled")
    assert asked == ["Cancel this run?"]
    assert live.api.state.primary.get_execution_status(execution_id).value == "cancelled"
    expect(operator.get_by_role("button", name="Cancel")).to_have_count(0)


def test_tenant_switcher(browser: Browser, live: Live, gate: Gate) -> None:
    gate.event.set()
    here = gate.start(live)
    other = live.api.other_tenant
    there = live.api.state.runner(other).schedule_workflow(gate.flow, {})
    page = signed_in(browser, live, "admin")
    expect(page.locator(f'tr[data-id="{here}"]')).to_be_visible()
    expect(page.locator(f'tr[data-id="{there}"]')).to_have_count(0)
    page.select_option("select[name=tenant]", other)  # submits on change
    expect(page.locator(f'tr[data-id="{there}"]')).to_be_visible()
    expect(page.locator(f'tr[data-id="{here}"]')).to_have_count(0)

    bound = signed_in(browser, live, "other")
    expect(bound.locator(f'tr[data-id="{there}"]')).to_be_visible()
    expect(bound.locator(f'tr[data-id="{here}"]')).to_have_count(0)
    expect(bound.locator("select[name=tenant]")).to_have_count(0)


def test_run_page_follows_the_run(browser: Browser, live: Live, gate: Gate) -> None:
    execution_id = gate.start(live)
    page = signed_in(browser, live, "operator")
    page.goto(f"/runs/{execution_id}")
    task_row = page.locator('tr[data-task="held"]')
    expect(task_row).to_contain_text("running")
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    page.evaluate("window.notReloaded = true")
    gate.event.set()
    expect(task_row).to_contain_text("completed")
    expect(page.locator("#run-status")).to_contain_text("completed")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True

    # A run paused, then cancelled elsewhere (over the API) changes on an open page.
    gate.event.clear()
    other = gate.start(live)
    viewer = signed_in(browser, live, "viewer")
    viewer.goto(f"/runs/{other}")
    expect(viewer.locator('tr[data-task="held"]')).to_contain_text("running")
    operator = {"Authorization": f"Bearer {live.api.keys['operator']}"}
    answer = httpx.post(f"{live.base}/api/v1/executions/{other}/pause", headers=operator)
    assert answer.status_code == 202
    expect(viewer.locator("#run-status")).to_contain_text("paused")
    answer = httpx.post(f"{live.base}/api/v1/executions/{other}/cancel", headers=operator)
    assert answer.status_code == 202
    expect(viewer.locator("#run-status")).to_contain_text("cancelled")
    gate.event.set()
