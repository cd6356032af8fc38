"""The web UI's Workflows pages in a real browser (Chromium, driven by Playwright) against a
real server over SQLite: the list, a workflow's graph (critical path) and stats, the start
form checked as it is typed, a run started from it followed to the end without a reload,
and a viewer who sees no form and whose forged post is refused."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from cloacina import Context, task, workflow

from .server_support import Live, live_server
from .test_ui_browser import TIMEOUT, signed_in
from .ui_browser_support import browser, shots

pytestmark = pytest.mark.timeout(180)

__all__ = ["browser", "shots"]  # the fixtures, used by name

expect.set_options(timeout=TIMEOUT)

TASKS = ["first", "left", "right", "last"]


class Diamond:
    """A four-task workflow (first, then left and right, then last) whose first task waits
    until the test opens the gate (or 30 s)."""

    def __init__(self, name: Callable[[str], str]) -> None:
        self.gate = threading.Event()
        self.flow = name("ui_wf_diamond")
        gate = self.gate

        @workflow(name=self.flow, description="A diamond for the workflow page's tests")
        class flow:
            @task()
            def first(context: Context) -> None:
                gate.wait(30)

            @task(dependencies=["first"])
            def left(context: Context) -> None:
                pass

            @task(dependencies=["first"])
            def right(context: Context) -> None:
                pass

            @task(dependencies=["left", "right"])
            def last(context: Context) -> None:
                pass


@pytest.fixture
def diamond(name: Callable[[str], str]) -> Iterator[Diamond]:
    made = Diamond(name)
    try:
        yield made
    finally:
        made.gate.set()


@pytest.fixture
def live(sqlite_url: str, diamond: Diamond) -> Iterator[Live]:
    with live_server(sqlite_url) as served:
        yield served
        diamond.gate.set()


def test_workflow_page_graph_stats_and_start_form(
    browser: Browser, live: Live, diamond: Diamond, shots: Path
) -> None:
    runner = live.api.state.primary
    diamond.gate.set()
    assert runner.execute(diamond.flow, {}).status.value == "completed"  # stats to show
    diamond.gate.clear()

    page = signed_in(browser, live, "operator")
    page.get_by_role("link", name="Workflows").click()
    page.wait_for_url("**/workflows")
    row = page.locator(f'tr[data-workflow="{diamond.flow}"]')
    expect(row.locator("td[data-tasks]")).to_have_text("4")
    expect(row).to_contain_text("completed")
    page.screenshot(path=str(shots / "workflows.png"), full_page=True)

    row.get_by_role("link", name=diamond.flow).click()
    page.wait_for_url(f"**/workflows/{diamond.flow}")
    graph = page.locator("#workflow-graph")
    expect(graph.locator("g.node")).to_have_count(4)
    for task_id in TASKS:
        expect(graph.locator(f'g.node[data-task="{task_id}"]')).to_be_visible()
    # The critical path runs from the first task to the last: both are highlighted.
    expect(graph.locator('g.node.critical[data-task="first"]')).to_have_count(1)
    expect(graph.locator('g.node.critical[data-task="last"]')).to_have_count(1)
    expect(graph.locator('g.node[data-task="first"] .tstat')).to_contain_text("critical")
    expect(graph.locator("path.edge.critical").first).to_be_attached()
    stats = page.locator("#workflow-stats")
    for task_id in TASKS:
        expect(stats.locator(f'tr[data-task="{task_id}"]')).to_contain_text(" s")
    expect(page.locator("#workflow-stats-summary")).to_contain_text("1 completed")
    page.screenshot(path=str(shots / "workflow.png"), full_page=True)

    # Invalid JSON: a clear message as it is typed, and the form does not submit.
    before = sum(runner.count_executions(workflow_name=diamond.flow).values())
    area = page.locator("#context")
    area.fill('{"who": ')
    expect(page.locator("#context-check")).to_contain_text("Not valid JSON")
    expect(area).to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Start run").click()
    expect(page.locator("#context-check")).to_contain_text("Not valid JSON")
    assert page.url.endswith(f"/workflows/{diamond.flow}")
    area.fill("[1, 2]")
    expect(page.locator("#context-check")).to_contain_text("must be a JSON object")
    page.keyboard.press("Tab")  # the button is reachable by keyboard
    expect(page.get_by_role("button", name="Start run")).to_be_focused()
    page.keyboard.press("Enter")
    assert page.url.endswith(f"/workflows/{diamond.flow}")
    assert sum(runner.count_executions(workflow_name=diamond.flow).values()) == before

    area.fill('{"who": "browser"}')
    expect(page.locator("#context-check")).to_contain_text("Valid JSON object")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/runs/*")
    execution_id = page.url.rsplit("/", 1)[1]
    assert runner.get_execution(execution_id).input_context == {"who": "browser"}
    run_graph = page.locator("#graph")
    expect(run_graph.locator('g.node[data-task="first"]')).to_have_attribute(
        "data-status", "running"
    )
    page.evaluate("window.notReloaded = true")
    diamond.gate.set()
    for task_id in TASKS:
        expect(run_graph.locator(f'g.node[data-task="{task_id}"]')).to_have_attribute(
            "data-status", "completed"
        )
    expect(page.locator("#run-status")).to_contain_text("completed")
    assert page.evaluate("window.notReloaded") is True


def test_viewer_sees_no_start_form_and_a_forged_start_is_refused(
    browser: Browser, live: Live, diamond: Diamond
) -> None:
    runner = live.api.state.primary
    page = signed_in(browser, live, "viewer")
    page.goto(f"/workflows/{diamond.flow}")
    expect(page.locator("#workflow-graph g.node")).to_have_count(4)
    expect(page.locator("#start-form")).to_have_count(0)
    expect(page.get_by_role("button", name="Start run")).to_have_count(0)
    expect(page.locator("#workflow-stats-summary")).to_contain_text("No finished run yet")
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    assert token
    # The viewer's own session and a valid CSRF token: still refused, nothing started.
    status: Any = page.evaluate(
        """([url, token]) => fetch(url, {method: 'POST',
             body: new URLSearchParams({csrf: token, context: '{}'})}).then(r => r.status)""",
        [f"/workflows/{diamond.flow}/start", token],
    )
    assert status == 403
    assert sum(runner.count_executions(workflow_name=diamond.flow).values()) == 0

    # Readable on a phone's width: no sideways scrolling of the page itself.
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto("/workflows")
    expect(page.locator(f'tr[data-workflow="{diamond.flow}"]')).to_be_visible()
    wide: Any = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 400
    page.goto(f"/workflows/{diamond.flow}")
    expect(page.locator("#workflow-graph g.node")).to_have_count(4)
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 400
