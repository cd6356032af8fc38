"""The web UI's run page with a 100,000-instance mapped task (``map_over``): it loads, shows
the mapped task as one task (not 100,000 rows) with its instances summarised, and its panel
lists its instances a page at a time, each opening its own panel."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from cloacina import Context, task, workflow

from .server_support import Live
from .test_ui_browser import signed_in
from .test_ui_graph import gate, live
from .ui_browser_support import browser, shots

pytestmark = pytest.mark.timeout(240)

__all__ = ["browser", "gate", "live", "shots"]  # the fixtures, used by name


def test_a_run_with_100000_instances_loads(
    browser: Browser, live: Live, name: Callable[[str], str], shots: Path
) -> None:
    flow = name("ui_map")

    @workflow(name=flow)
    class _flow:
        @task(id="make")
        def make(context: Context) -> None:
            context.insert("items", list(range(100_000)))

        @task(id="process", dependencies=["make"], map_over="items")
        def process(context: Context) -> int:
            return int(context["item"])

        @task(id="report", dependencies=["process"])
        def report(context: Context) -> None:
            context.insert("n", len(context["process"]))

    result = live.api.state.primary.execute(flow, {}, timeout=180)
    assert result.status == "completed", result.error
    assert set(result.tasks) == {"make", "process", "report"}
    page = signed_in(browser, live, "viewer")
    started = time.monotonic()
    page.goto(f"/runs/{result.execution_id}")
    expect(page.locator("#run-live[data-loaded=true]")).to_have_count(1)
    assert time.monotonic() - started < 10
    rows = page.locator("#task-rows tr[data-task]")
    expect(rows).to_have_count(3)
    expect(page.locator('#task-rows tr[data-task="process"]')).to_contain_text("completed")
    process = page.locator('#task-rows tr[data-task="process"]')
    expect(process).to_contain_text("100000 instances: 100000 completed")
    process.click()
    panel = page.locator("#task-panel")
    expect(panel.locator("h2")).to_contain_text("process")
    expect(panel.locator("h2")).to_contain_text("completed")
    expect(panel.locator("#map-summary")).to_have_text("100000 instances: 100000 completed")

    # Its instances, a page at a time; a filter; one instance's own panel.
    instances = panel.locator("#instance-rows tr[data-instance]")
    expect(instances).to_have_count(100)
    expect(instances.first).to_contain_text("completed")
    panel.get_by_role("button", name="More instances").click()
    expect(instances).to_have_count(200)
    expect(instances.nth(199)).to_have_attribute("data-instance", "process[199]")
    page.screenshot(path=str(shots / "run-map.png"), full_page=False)
    panel.get_by_role("button", name="failed").click()
    expect(panel.locator("#instance-rows")).to_contain_text("No instance here.")
    panel.get_by_role("button", name="all").click()
    instances.nth(7).click()
    expect(panel.locator("h2")).to_contain_text("process[7]")
    expect(panel.locator(".attempt")).to_have_count(1)
    expect(panel.locator(".attempt h3")).to_contain_text("completed")
    expect(panel.locator(".output")).to_contain_text("7")  # what it returned
