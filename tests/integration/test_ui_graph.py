"""A run's page draws its graph (nodes by status, live) and a Gantt bar per attempt, in a
real browser over SQLite (the document it is drawn from: tests/unit/test_ui_run_state.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, expect

from cloacina import Context, DefaultRunner, RetryPolicy, task, workflow

from .server_support import Live, live_server
from .test_ui_browser import signed_in
from .ui_browser_support import browser, shots

pytestmark = pytest.mark.timeout(180)

__all__ = ["browser", "shots"]  # the fixtures, used by name


def test_get_task_output(runner: DefaultRunner, name: Callable[[str], str]) -> None:
    flow = name("task_output")

    @workflow(name=flow)
    class output_flow:
        @task()
        def gives(context: Context) -> dict[str, object]:
            return {"answer": 42}

        @task(dependencies=["gives"])
        def fails(context: Context) -> None:
            raise ValueError("no")

    execution_id = runner.execute(flow, {}).execution_id
    assert runner.get_task_output(execution_id, "gives") == {"answer": 42}
    assert runner.get_task_output(execution_id, "fails") is None


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def live(sqlite_url: str, gate: threading.Event) -> Iterator[Live]:
    with live_server(sqlite_url) as served:
        yield served
        gate.set()


def test_graph_and_gantt_follow_the_run(
    browser: Browser, live: Live, gate: threading.Event, name: Callable[[str], str], shots: Path
) -> None:
    flow = name("ui_graph")
    tries: list[int] = []

    @workflow(name=flow)
    class graph_flow:
        @task()
        def first(context: Context) -> None:
            pass

        @task(dependencies=["first"])
        def held(context: Context) -> None:
            gate.wait(30)

        @task(
            dependencies=["first"],
            retry=RetryPolicy(max_attempts=2, initial_delay=0.01, jitter=False),
        )
        def flaky(context: Context) -> None:
            tries.append(1)
            if len(tries) == 1:
                raise RuntimeError("first try fails")

        @task(dependencies=["held", "flaky"])
        def last(context: Context) -> None:
            pass

    answer = httpx.post(
        f"{live.base}/api/v1/executions",
        headers={"Authorization": f"Bearer {live.api.keys['operator']}"},
        json={"workflow": flow, "context": {}},
    )
    assert answer.status_code == 201, answer.text
    execution_id = answer.json()["execution_id"]
    page = signed_in(browser, live, "viewer")
    page.goto(f"/runs/{execution_id}")

    def node(task_id: str) -> Locator:
        return page.locator(f"#graph .node[data-task='{task_id}']")

    expect(node("held")).to_contain_text("running")
    expect(node("first")).to_contain_text("completed")
    expect(node("flaky")).to_contain_text("completed")
    expect(node("last")).to_contain_text("pending")
    assert node("held").get_attribute("class") == "node s-running"

    # Left to right: a task sits right of what it depends on.
    def left(task_id: str) -> float:
        moved = node(task_id).get_attribute("transform") or ""
        return float(moved.removeprefix("translate(").split(",")[0])

    assert left("first") < left("held") == left("flaky") < left("last")
    assert page.locator("#graph .edge").count() == 4
    page.evaluate("window.notReloaded = true")

    gate.set()
    expect(node("last")).to_contain_text("completed")
    expect(node("held")).to_contain_text("completed")
    assert node("held").get_attribute("class") == "node s-completed"
    assert page.evaluate("window.notReloaded") is True

    bars = page.locator("#gantt .bar")
    expect(bars).to_have_count(5)  # four tasks, flaky twice
    flaky = page.locator("#gantt .bar[data-task=flaky]")
    expect(flaky).to_have_count(2)
    assert flaky.nth(0).get_attribute("class") == "bar o-failed"
    assert flaky.nth(1).get_attribute("class") == "bar o-completed"

    # Hovering a bar highlights the task's node (and back).
    flaky.nth(1).locator("rect.run").hover()
    expect(node("flaky")).to_have_class("node s-completed hl")
    node("first").hover()
    expect(page.locator("#gantt .bar[data-task=first]")).to_have_class("bar o-completed hl")
    expect(node("flaky")).to_have_class("node s-completed")
    page.screenshot(path=str(shots / "run_graph.png"), full_page=True)


def test_clicking_a_failed_task_shows_its_error_traceback_and_logs(
    browser: Browser, live: Live, name: Callable[[str], str]
) -> None:
    flow = name("ui_panel")

    @workflow(name=flow)
    class panel_flow:
        @task()
        def makes(context: Context) -> dict[str, object]:
            return {"made": {"count": 3, "long": "x" * 500}}

        @task(dependencies=["makes"])
        def breaks(context: Context) -> None:
            print("about to break: widget count 7")
            raise ValueError("the widget is broken")

    runner = live.api.state.primary
    execution_id = runner.schedule_workflow(flow, {"seed": 1})
    runner.wait(execution_id, timeout=20)
    page = signed_in(browser, live, "viewer")
    page.goto(f"/runs/{execution_id}")
    panel = page.locator("#task-panel")
    expect(panel).to_be_hidden()
    page.locator("#graph .node[data-task=breaks]").click()
    expect(panel).to_be_visible()
    expect(panel.locator("h2")).to_contain_text("failed")
    expect(panel.locator(".attempt-error")).to_contain_text("the widget is broken")
    panel.locator(".traceback summary").click()
    expect(panel.locator(".traceback pre")).to_be_visible()
    expect(panel.locator(".traceback pre")).to_contain_text("ValueError")
    expect(panel.locator(".traceback pre")).to_contain_text("raise ValueError")
    expect(panel.locator(".logs pre")).to_contain_text("about to break: widget count 7")

    events = page.locator("#run-events")
    events.locator("summary").click()  # the run's events, fetched on opening
    expect(events.locator("tr", has_text="task_failed")).to_contain_text("breaks")
    expect(events.locator("tr", has_text="execution_failed")).to_have_count(1)

    page.locator("#gantt .bar[data-task=breaks] rect.run").click()  # from the Gantt too
    expect(panel.locator(".attempt")).to_have_count(1)
    expect(panel.locator(".output")).to_have_count(0)  # a failed task returned nothing
    given = panel.locator(".input")  # what it was given: its dependency's output
    expect(given.locator("details details > summary").first).to_have_text("{2 keys}")
    expect(given).to_contain_text("made")

    page.locator("tr[data-task=makes]").click()  # and from the table: its output, folded
    output = panel.locator(".output")
    expect(output).to_contain_text("{2 keys}")  # the whole context after it: seed, made
    expect(output.locator(".long pre")).to_be_hidden()
    folded = output.locator("details details > summary").first  # "made", folded
    expect(folded).to_have_text("{2 keys}")
    folded.click()
    expect(output.locator(".long summary")).to_contain_text("(502 chars)")
    output.locator(".long summary").click()
    expect(output.locator(".long pre")).to_have_text('"' + "x" * 500 + '"')
    expect(panel.locator(".input")).to_contain_text("seed")  # a root gets the run's input


def test_task_panel_needs_a_session_and_the_runs_tenant(live: Live) -> None:
    flow = "ui_panel_auth_" + live.api.other_tenant

    @workflow(name=flow)
    class auth_flow:
        @task()
        def only(context: Context) -> None:
            pass

    here = live.api.state.primary.schedule_workflow(flow, {})
    there = live.api.state.runner(live.api.other_tenant).schedule_workflow(flow, {})
    path = f"{live.base}/ui/runs/{{}}/tasks/only"
    assert httpx.get(path.format(here)).status_code == 401  # no session
    key = {"Authorization": f"Bearer {live.api.keys['viewer']}"}
    assert httpx.get(path.format(here), headers=key).status_code == 401  # a key is no session

    with httpx.Client(base_url=live.base) as client:
        signin = client.post(
            "/", data={"api_key": live.api.keys["viewer"]}, headers={"Origin": live.base}
        )
        assert signin.status_code == 303
        assert client.get(f"/ui/runs/{here}/tasks/only").status_code == 200
        assert client.get(f"/ui/runs/{here}/tasks/nope").status_code == 404
        assert client.get(f"/ui/runs/{there}/tasks/only").status_code == 404  # other tenant
        assert client.get(f"/ui/runs/{here}/log").status_code == 200
        assert client.get(f"/ui/runs/{there}/log").status_code == 404
    assert httpx.get(f"{live.base}/ui/runs/{here}/log").status_code == 401


def test_following_a_running_tasks_logs(
    browser: Browser, live: Live, gate: threading.Event, name: Callable[[str], str]
) -> None:
    flow = name("ui_follow")
    done = threading.Event()  # the attempt ends when set (after line two was followed)

    @workflow(name=flow)
    class follow_flow:
        @task()
        def talks(context: Context) -> None:
            print("line one", flush=True)
            gate.wait(30)
            print("line two", flush=True)
            done.wait(30)

    runner = live.api.state.primary
    execution_id = runner.schedule_workflow(flow, {})
    page = signed_in(browser, live, "viewer")
    page.goto(f"/runs/{execution_id}")
    page.locator("tr[data-task=talks]").click()
    panel = page.locator("#task-panel")
    expect(panel.locator("h2")).to_contain_text("running")
    panel.get_by_role("button", name="Follow logs").click()
    logs = panel.locator("pre[data-follow]")
    expect(logs).to_contain_text("line one")
    gate.set()
    expect(logs).to_contain_text("line two")  # streamed in while the attempt still runs
    expect(panel.locator("h2")).to_contain_text("running")
    done.set()
    expect(panel.locator("h2")).to_contain_text("completed")  # the panel catches up at the end
    expect(panel.locator(".logs pre")).to_have_text("line one\nline two\n")

    with httpx.Client(base_url=live.base) as client:
        path = f"/ui/runs/{execution_id}/tasks/talks/logs"
        assert client.get(path).status_code == 401  # no session
        client.post("/", data={"api_key": live.api.keys["viewer"]}, headers={"Origin": live.base})
        answer = client.get(path)
        assert answer.status_code == 200
        assert "line two" in answer.text and answer.text.endswith("event: end\ndata: {}\n\n")
        assert client.get(f"/ui/runs/{execution_id}/tasks/nope/logs").status_code == 404
        there = live.api.state.runner(live.api.other_tenant).schedule_workflow(flow, {})
        assert client.get(f"/ui/runs/{there}/tasks/talks/logs").status_code == 404
