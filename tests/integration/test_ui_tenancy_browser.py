"""A key of tenant A never shows tenant B's data, on any page of the web UI, in a real
browser: B's runs, package, package's workflow, worker and audit rows are absent from A's
pages, and B's URLs answer 404 to A's session (and the reverse for B's key)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from cloacina import Context, DefaultRunner, task, workflow

from .server_support import Live, live_server
from .test_ui_browser import TIMEOUT, signed_in
from .ui_browser_support import browser, shots

pytestmark = pytest.mark.timeout(180)

__all__ = ["browser", "shots"]  # the fixtures, used by name

expect.set_options(timeout=TIMEOUT)

B_FLOW = """
from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="only_in_b_flow", package="only_in_b")
class only_in_b_flow:
    @task(id="hello")
    def hello(context: Context) -> None:
        context.insert("greeting", "hello")
"""


@pytest.fixture
def live(sqlite_url: str) -> Iterator[Live]:
    with live_server(sqlite_url) as served:
        yield served


def text_of(page: Page, path: str) -> str:
    answer = page.goto(path)
    assert answer is not None and answer.status == 200, (path, answer and answer.status)
    page.wait_for_load_state("networkidle")
    return page.locator("main").inner_text()


def status_of(page: Page, path: str) -> int:
    answer = page.request.get(path)
    return answer.status


def test_a_key_of_tenant_a_never_shows_tenant_b(
    browser: Browser,
    live: Live,
    name: Callable[[str], str],
    tmp_path: Path,
    make_package: Callable[..., bytes],
) -> None:
    flow = name("ui_tenancy")

    @workflow(name=flow)
    class tenancy_flow:
        @task()
        def only(context: Context) -> None:
            pass

    a = live.api.state.primary
    in_a = a.execute(flow, {}).execution_id
    archive = make_package(
        tmp_path,
        "only_in_b",
        "1.0.0",
        {"only_in_b/__init__.py": "", "only_in_b/flows.py": B_FLOW},
        ["only_in_b.flows"],
    )
    # Uploaded by B's admin through the API: B's package, B's audit row.
    answer = live.api.call(
        "POST",
        "/api/v1/packages",
        who="other",
        content=archive,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status_code in (200, 201), answer.text
    # The server executes its own tenant's tasks; B's are run by a worker of B's.
    with DefaultRunner(live.api.url, tenant=live.api.other_tenant) as b:
        in_b = b.execute(flow, {"secret": "of-b"}).execution_id
        b_worker = b.worker_id
        b_workers = {w.id for w in b.list_workers(include_stopped=True)}
        assert b_worker in b_workers
    assert not b_workers & {w.id for w in a.list_workers()}

    # A key bound to tenant A (the fixture's viewer, operator and admin serve every tenant).
    live.api.keys["a_admin"] = a.create_api_key("a-admin", "admin", tenant=a.tenant).key
    page = signed_in(browser, live, "a_admin")  # tenant A's admin: sees every page of A
    runs = text_of(page, "/runs")
    assert in_a[:8] in runs and in_b[:8] not in runs
    assert "only_in_b" not in text_of(page, "/packages")
    assert "only_in_b_flow" not in text_of(page, "/workflows")
    workers = text_of(page, "/workers")
    assert all(w not in workers for w in b_workers)
    audit = text_of(page, "/audit")
    assert "package.register" not in audit and "only_in_b" not in audit
    for path in (
        f"/runs/{in_b}",
        f"/ui/runs/{in_b}/state",
        f"/ui/runs/{in_b}/head",
        f"/ui/runs/{in_b}/tasks/only",
        f"/ui/runs/{in_b}/log",
        f"/ui/runs/{in_b}/events",
        "/workflows/only_in_b_flow",
    ):
        assert status_of(page, path) == 404, path

    other = signed_in(browser, live, "other")  # B's admin, bound to B: the reverse
    runs = text_of(other, "/runs")
    assert in_b[:8] in runs and in_a[:8] not in runs
    assert "only_in_b" in text_of(other, "/packages")
    assert status_of(other, f"/runs/{in_a}") == 404
    assert status_of(other, f"/ui/runs/{in_a}/state") == 404
    expect(other.locator("select[name=tenant]")).to_have_count(0)
