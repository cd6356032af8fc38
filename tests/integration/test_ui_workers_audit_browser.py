"""The web UI's Workers and Audit pages in a real browser (Chromium, driven by Playwright)
against a real server over SQLite: a live worker with its running task and a lost one,
updated without a reload; the audit log of a cancel made through the UI, its filters, its
exports, and the 403 of the roles below admin."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from cloacina.store.records import WorkerRow
from cloacina.store.tables import workers

from .server_support import Live
from .test_ui_browser import TIMEOUT, Gate, gate, live, signed_in
from .ui_browser_support import browser, shots

__all__ = ["browser", "gate", "live", "shots"]  # the fixtures, used by name


def add_lost_worker(live: Live) -> str:
    """A worker row last heard of a minute ago (a process that died without stopping)."""
    store = live.api.state.primary.store
    worker_id = "gone-host:4242:deadbeef"
    now = time.time()
    store.register_worker(
        WorkerRow(
            id=worker_id,
            host="gone-host",
            pid=4242,
            status="running",
            started_at=now - 600,
            last_heartbeat=now,
            running_tasks=0,
            max_tasks=4,
            version="0.0-test",
            stopped_at=None,
        )
    )
    with store.engine.begin() as conn:  # register_worker stamps the database's clock
        conn.execute(
            update(workers).where(workers.c.id == worker_id).values(last_heartbeat=now - 60)
        )
    return worker_id


def serving_worker(live: Live) -> str:
    (found,) = [w for w in live.api.state.primary.list_workers() if w.state == "running"]
    return found.id


def test_workers_live_and_lost(browser: Browser, live: Live, gate: Gate, shots: Path) -> None:
    lost_id = add_lost_worker(live)
    alive_id = serving_worker(live)
    page = signed_in(browser, live, "viewer")
    page.get_by_role("link", name="Workers").click()
    page.wait_for_url("**/workers")
    alive = page.locator(f'tr[data-worker="{alive_id}"]')
    lost = page.locator(f'tr[data-worker="{lost_id}"]')
    expect(alive).to_contain_text("alive")
    expect(alive.locator("[data-age]")).to_have_text(re.compile(r"^\d+ s ago$"))
    expect(lost).to_contain_text("lost")
    expect(lost).to_contain_text("gone-host")
    expect(lost).to_contain_text("4242")
    expect(lost.locator("[data-age]")).to_have_text(re.compile(r"^(\d+ s|1 min) ago$"))
    # The status line is the live region, announced when it changes (not every 2 s).
    status = page.locator("#workers-summary")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(status).to_have_text("2 workers: 1 alive, 1 lost; 0 tasks running.")
    page.evaluate("window.notReloaded = true")

    execution_id = gate.start(live)  # its task runs on the serving worker
    link = alive.locator(f'a[href="/runs/{execution_id}"]')
    expect(link).to_be_visible()
    expect(link).to_have_text(execution_id[:8])
    expect(alive.locator("td[data-running]")).to_have_attribute("data-running", "1")
    expect(alive).to_contain_text("held")  # the task's id beside its run
    expect(lost.locator("td[data-running]")).to_have_attribute("data-running", "0")
    expect(status).to_have_text("2 workers: 1 alive, 1 lost; 1 task running.")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(shots / "workers.png"))

    gate.event.set()  # the task ends: the worker holds nothing, still no reload
    expect(link).to_have_count(0)
    expect(alive.locator("td[data-running]")).to_have_attribute("data-running", "0")
    expect(status).to_have_text("2 workers: 1 alive, 1 lost; 0 tasks running.")
    assert page.evaluate("window.notReloaded") is True


def test_worker_task_links_to_its_run(browser: Browser, live: Live, gate: Gate) -> None:
    execution_id = gate.start(live)
    page = signed_in(browser, live, "viewer")
    page.goto("/workers")
    page.locator(f'a[href="/runs/{execution_id}"]').click()
    page.wait_for_url(f"**/runs/{execution_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(execution_id)


def cancel_through_the_ui(browser: Browser, live: Live, execution_id: str) -> None:
    operator = signed_in(browser, live, "operator")
    operator.goto(f"/runs/{execution_id}")
    operator.on("dialog", lambda dialog: dialog.accept())
    operator.get_by_role("button", name="Cancel").click()
    runner = live.api.state.primary
    deadline = time.monotonic() + TIMEOUT / 1000
    while runner.get_execution_status(execution_id).value != "cancelled":
        assert time.monotonic() < deadline, "the run was not cancelled"
        time.sleep(0.05)
    operator.context.close()


def rows(page: Page) -> list[str]:
    return [r.inner_text() for r in page.locator("tr[data-audit]").all()]


def test_audit_lists_filters_and_exports(
    browser: Browser, live: Live, gate: Gate, shots: Path
) -> None:
    execution_id = gate.start(live)  # run.start by the operator's key, over the API
    cancel_through_the_ui(browser, live, execution_id)

    page = signed_in(browser, live, "admin")
    page.get_by_role("link", name="Audit").click()
    page.wait_for_url("**/audit")
    first = page.locator("tr[data-audit]").first  # newest first
    expect(first).to_contain_text("run.cancel")
    expect(first).to_contain_text("test-operator")
    expect(first).to_contain_text("ok")
    expect(first.get_by_role("link", name=execution_id[:8])).to_have_attribute(
        "href", f"/runs/{execution_id}"
    )
    expect(page.locator("tr[data-audit]", has_text="run.start")).to_have_count(1)
    page.screenshot(path=str(shots / "audit.png"))

    # Filters (htmx swaps the results and keeps the address in step; no reload).
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Action").fill("run.cancel")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr[data-audit]")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"action=run\.cancel"))
    expect(page.get_by_role("status")).to_have_text("1 matching entry.")  # announced
    page.get_by_label("Outcome").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No audit entries match.")).to_be_visible()
    page.get_by_label("Outcome").select_option("ok")
    page.get_by_label("Actor").fill("test-admin")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No audit entries match.")).to_be_visible()
    page.get_by_label("Actor").fill("test-operator")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr[data-audit]")).to_have_count(1)
    page.get_by_label("Until (UTC)").fill("2000-01-01T00:00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No audit entries match.")).to_be_visible()
    page.get_by_label("Until (UTC)").fill("")
    page.get_by_label("Since (UTC)").fill("2000-01-01T00:00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr[data-audit]")).to_have_count(1)
    assert page.evaluate("window.notReloaded") is True

    # The exports hold the filtered rows, as the service's export writes them (the CLI's).
    runner = live.api.state.primary
    filters: dict[str, Any] = {"action": "run.cancel", "actor": "test-operator", "outcome": "ok"}
    with page.expect_download() as jsonl_download:
        page.get_by_role("link", name="JSONL").click()
    jsonl = Path(jsonl_download.value.path()).read_text()
    (line,) = [json.loads(x) for x in jsonl.splitlines()]
    assert line["action"] == "run.cancel" and line["target"] == execution_id
    assert "test-operator" in line["actor"] and line["outcome"] == "ok"
    since = datetime(2000, 1, 1, tzinfo=UTC)
    assert jsonl == "".join(runner.export_audit("jsonl", since=since, **filters))
    with page.expect_download() as csv_download:
        page.get_by_role("link", name="CSV").click()
    text = Path(csv_download.value.path()).read_text()
    (record,) = list(csv.DictReader(io.StringIO(text)))
    assert record["action"] == "run.cancel" and record["target"] == execution_id
    assert text == "".join(runner.export_audit("csv", since=since, **filters))

    # Unfiltered, both actions; paged by cursor.
    page.goto("/audit?limit=1")
    assert len(rows(page)) == 1 and "run.cancel" in rows(page)[0]
    page.get_by_role("link", name="Older").click()
    expect(page.locator("tr[data-audit]")).to_have_count(1)
    expect(page.locator("tr[data-audit]")).to_contain_text("run.start")
    expect(page.get_by_role("link", name="Newest")).to_be_visible()


def test_audit_is_for_admins_only(browser: Browser, live: Live) -> None:
    for who in ("viewer", "operator"):
        page = signed_in(browser, live, who)
        expect(page.get_by_role("link", name="Workers")).to_be_visible()
        expect(page.get_by_role("link", name="Audit")).to_have_count(0)
        answer = page.goto("/audit")
        assert answer is not None and answer.status == 403
        expect(page.get_by_role("alert")).to_contain_text("admins")
        export = page.request.get("/audit/export?format=csv")
        assert export.status == 403
        assert "run.start" not in export.text()
        page.context.close()
    bound = signed_in(browser, live, "other")  # an admin of another tenant only
    answer = bound.goto("/audit")
    assert answer is not None and answer.status == 200
    expect(bound.get_by_label("Tenant", exact=True)).to_have_count(0)
