"""Big runs stay usable in a real browser: a 2,000-task run's page draws its graph as groups
of layers, windows its task list (scrolls to the end, filters, a group's tasks), opens a
task's panel; a grouped graph follows a live run without a reload; a run links its
sub-workflows' child runs and a child its parent."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from cloacina import Context, subworkflow, task, workflow

from .server_support import Live
from .test_ui_browser import signed_in
from .test_ui_graph import gate, live
from .ui_browser_support import browser, shots

pytestmark = pytest.mark.timeout(240)

__all__ = ["browser", "gate", "live", "shots"]  # the fixtures, used by name

WIDTH = 100


def grid(name: str, layers: int, first: Callable[[Context], None] | None = None) -> None:
    """Layers of WIDTH tasks, each depending on two of the layer before (the first
    layer's bodies ``first``, when given)."""
    attrs: dict[str, Any] = {}
    for n in range(layers * WIDTH):
        layer, i = divmod(n, WIDTH)
        deps = [] if layer == 0 else [f"t{layer - 1}_{i}", f"t{layer - 1}_{(i + 1) % WIDTH}"]

        def body(context: Context) -> None:
            return None

        chosen = first if (first is not None and layer == 0) else body
        made = (lambda f: lambda context: f(context))(chosen)
        made.__name__ = f"t{layer}_{i}"
        attrs[made.__name__] = task(id=made.__name__, dependencies=deps)(made)
    workflow(name=name)(type(name, (), attrs))


def test_a_2000_task_run_page_loads_and_scrolls(
    browser: Browser, live: Live, name: Callable[[str], str], shots: Path
) -> None:
    flow = name("ui_big")
    grid(flow, 20)
    result = live.api.state.primary.execute(flow, {}, timeout=120)
    assert result.status == "completed" and len(result.tasks) == 2000
    page = signed_in(browser, live, "viewer")
    page.goto(f"/runs/{result.execution_id}")
    expect(page.locator("#run-live[data-loaded=true]")).to_have_count(1)
    expect(page.locator("#graph-note")).to_contain_text("2,000 tasks: drawn as 20 groups")
    groups = page.locator("#graph g.node[data-group]")
    expect(groups).to_have_count(20)
    expect(groups.first).to_contain_text("layer 1")
    expect(groups.first).to_contain_text("completed · 100/100 done")
    assert page.locator("#graph .edge").count() == 19

    # The list is windowed: far fewer rows than tasks, yet every task is reachable.
    rows = page.locator("#task-rows tr[data-task]")
    expect(rows.first).to_contain_text("t0_0")
    assert 10 < rows.count() < 200
    expect(page.locator("#task-count")).to_have_text("2,000 tasks")
    page.locator("#task-box").evaluate("box => { box.scrollTop = box.scrollHeight; }")
    expect(page.locator('#task-rows tr[data-task="t19_99"]')).to_contain_text("completed")
    expect(page.locator('#task-rows tr[data-task="t0_0"]')).to_have_count(0)
    page.screenshot(path=str(shots / "run-big.png"), full_page=False)

    # Filters: by text, then a group of the graph.
    page.fill("#task-find", "t7_4")
    expect(rows).to_have_count(11)  # t7_4, t7_40 ... t7_49
    expect(page.locator("#task-count")).to_have_text("11 of 2,000 tasks")
    page.fill("#task-find", "")
    groups.nth(2).click()
    expect(page.locator("#task-count")).to_have_text("100 of 2,000 tasks in layer 3")
    expect(rows.first).to_contain_text("t2_0")
    page.get_by_role("button", name="Show every task").click()
    expect(page.locator("#task-count")).to_have_text("2,000 tasks")

    # The Gantt chart is windowed too; a task's panel opens from a row.
    bars = page.locator("#gantt .bar")
    assert 0 < bars.count() < 200
    rows.first.click()
    expect(page.locator("#task-panel h2")).to_contain_text("t0_0")
    expect(page.locator("#task-panel h2")).to_contain_text("completed")
    rows.nth(1).focus()  # from the keyboard: Space (or Enter) on a focused row
    page.keyboard.press("Space")
    expect(page.locator("#task-panel h2")).to_contain_text("t0_1")


def test_a_grouped_graph_follows_a_live_run(
    browser: Browser, live: Live, gate: threading.Event, name: Callable[[str], str]
) -> None:
    flow = name("ui_big_live")

    def held(context: Context) -> None:
        gate.wait(60)

    grid(flow, 4, first=held)
    execution_id = live.api.state.primary.schedule_workflow(flow, {})
    page = signed_in(browser, live, "viewer")
    page.goto(f"/runs/{execution_id}")
    groups = page.locator("#graph g.node[data-group]")
    expect(groups).to_have_count(4)
    expect(groups.first).to_have_attribute("data-status", "running")
    expect(groups.nth(3)).to_have_attribute("data-status", "pending")
    page.evaluate("window.notReloaded = true")
    gate.set()
    for i in range(4):
        expect(groups.nth(i)).to_have_attribute("data-status", "completed")
    expect(groups.nth(3)).to_contain_text("100/100 done")
    expect(page.locator("#run-status")).to_contain_text("completed")
    expect(page.locator("#run-progress")).to_contain_text("400 of 400")
    assert page.evaluate("window.notReloaded") is True


def test_a_runs_page_links_its_children_and_its_parent(
    browser: Browser, live: Live, name: Callable[[str], str]
) -> None:
    child_name, parent_name = name("ui_child"), name("ui_parent")

    @workflow(name=child_name)
    class child_flow:
        @task()
        def inner(context: Context) -> None:
            context.insert("inner", True)

    @workflow(name=parent_name)
    class parent_flow:
        @task()
        def prepare(context: Context) -> None:
            pass

        etl = subworkflow(id="etl", workflow=child_name, dependencies=[prepare])

    result = live.api.state.primary.execute(parent_name, {}, timeout=60)
    assert result.status == "completed" and len(result.children) == 1
    child = result.children[0]
    page = signed_in(browser, live, "viewer")
    page.goto(f"/runs/{result.execution_id}")
    expect(page.locator('#task-rows tr[data-task="etl"]')).to_contain_text("completed")
    page.locator("#run-children").get_by_role("link", name=child[:8]).click()
    page.wait_for_url(f"**/runs/{child}")
    expect(page.locator("#run-parent")).to_contain_text("etl")
    expect(page.locator('#task-rows tr[data-task="inner"]')).to_contain_text("completed")
    page.locator("#run-parent").get_by_role("link", name=result.execution_id[:8]).click()
    page.wait_for_url(f"**/runs/{result.execution_id}")
