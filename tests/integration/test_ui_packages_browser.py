"""The web UI's Packages page in a real browser (Chromium, driven by Playwright) against a
real server over SQLite: upload by the file picker and by drag and drop (a DataTransfer
dispatched on the drop zone), the verification result, a malformed file's refusal reason,
delete after a confirmation, and a viewer who sees no upload or delete and whose forged
posts are refused."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, expect

from .server_support import Live, live_server
from .test_ui_browser import TIMEOUT, signed_in
from .ui_browser_support import browser, shots

pytestmark = pytest.mark.timeout(180)

__all__ = ["browser", "shots"]  # the fixtures, used by name

expect.set_options(timeout=TIMEOUT)

PackageFactory = Callable[..., bytes]

PKG_FLOW = """
from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="ui_drop_flow", package="ui_drop")
class ui_drop_flow:
    @task(id="hello")
    def hello(context: Context) -> None:
        context.insert("greeting", "hello")
"""

SOURCES = {"ui_drop/__init__.py": "", "ui_drop/flows.py": PKG_FLOW}

DROP = """([data, name]) => {
  const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, {type: "application/octet-stream"}));
  const zone = document.getElementById("dropzone");
  const how = {dataTransfer: transfer, bubbles: true, cancelable: true};
  zone.dispatchEvent(new DragEvent("dragover", how));
  zone.dispatchEvent(new DragEvent("drop", how));
}"""


@pytest.fixture
def live(sqlite_url: str) -> Iterator[Live]:
    with live_server(sqlite_url) as served:
        yield served


def row(page: Any, version: str) -> Any:
    return page.locator(f'tr[data-package="ui_drop"][data-version="{version}"]')


def test_upload_by_picker_and_drop_refusal_and_delete(
    browser: Browser, live: Live, tmp_path: Path, make_package: PackageFactory, shots: Path
) -> None:
    first = make_package(tmp_path, "ui_drop", "1.0.0", SOURCES, ["ui_drop.flows"])
    second = make_package(tmp_path, "ui_drop", "2.0.0", SOURCES, ["ui_drop.flows"])
    runner = live.api.state.primary
    page = signed_in(browser, live, "admin")
    page.get_by_role("link", name="Packages").click()
    page.wait_for_url("**/packages")
    expect(page.locator("#no-packages")).to_be_visible()

    # The file picker, then the Upload button.
    page.set_input_files(
        "#package-file",
        {"name": "ui_drop-1.0.0.cloacina", "mimeType": "application/octet-stream", "buffer": first},
    )
    expect(page.locator("#package-chosen")).to_contain_text("ui_drop-1.0.0.cloacina")
    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Upload").click()
    result = page.locator("#upload-result")
    expect(result).to_contain_text("Accepted: Verified and registered ui_drop 1.0.0 (unsigned)")
    expect(row(page, "1.0.0")).to_contain_text("unsigned")
    expect(row(page, "1.0.0").get_by_role("link", name="ui_drop_flow")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True  # htmx swapped the result in

    # Drag and drop: a DataTransfer holding the file, dropped on the drop zone.
    page.evaluate(DROP, [base64.b64encode(second).decode(), "ui_drop-2.0.0.cloacina"])
    expect(result).to_contain_text("Verified and registered ui_drop 2.0.0")
    expect(row(page, "2.0.0")).to_contain_text("default")
    expect(row(page, "1.0.0")).not_to_contain_text("default")
    assert {p.version for p in runner.list_packages()} == {"1.0.0", "2.0.0"}

    # A malformed file: the engine's reason, not a server error.
    page.set_input_files(
        "#package-file",
        {"name": "broken.cloacina", "mimeType": "application/octet-stream", "buffer": b"junk"},
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("alert")).to_contain_text("Refused:")
    expect(page.get_by_role("alert")).to_contain_text("not a .cloacina package")
    expect(row(page, "2.0.0")).to_be_visible()  # the list is still shown
    page.screenshot(path=str(shots / "packages.png"), full_page=True)

    # Delete asks first: dismissed, nothing happens; accepted, the version goes.
    asked: list[str] = []
    answer = {"accept": False}

    def on_dialog(dialog: Dialog) -> None:
        asked.append(dialog.message)
        if answer["accept"]:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    delete = page.get_by_role("button", name="Delete ui_drop 1.0.0")
    delete.click()
    expect(row(page, "1.0.0")).to_be_visible()
    assert len(runner.list_packages()) == 2
    answer["accept"] = True
    delete.focus()
    page.keyboard.press("Enter")  # by keyboard too
    page.wait_for_url("**/packages?deleted=*")
    expect(page.get_by_role("status").first).to_contain_text("Deleted ui_drop 1.0.0.")
    expect(row(page, "1.0.0")).to_have_count(0)
    expect(row(page, "2.0.0")).to_be_visible()
    assert asked and all("Delete package ui_drop 1.0.0?" in m for m in asked)
    assert [p.version for p in runner.list_packages()] == ["2.0.0"]


def test_viewer_sees_no_upload_or_delete_and_forged_posts_are_refused(
    browser: Browser, live: Live, tmp_path: Path, make_package: PackageFactory
) -> None:
    runner = live.api.state.primary
    runner.register_workflow(make_package(tmp_path, "ui_drop", "1.0.0", SOURCES, ["ui_drop.flows"]))
    page = signed_in(browser, live, "viewer")
    page.goto("/packages")
    expect(row(page, "1.0.0")).to_contain_text("unsigned")
    expect(page.locator("#upload-form")).to_have_count(0)
    expect(page.locator("#dropzone")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete ui_drop 1.0.0")).to_have_count(0)
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    assert token
    upload: Any = page.evaluate(
        """(token) => { const form = new FormData(); form.append("csrf", token);
             form.append("package", new File([new Uint8Array([80, 75])], "x.cloacina"));
             return fetch("/packages", {method: "POST", body: form}).then(r => r.status); }""",
        token,
    )
    assert upload == 403
    delete: Any = page.evaluate(
        """(token) => fetch("/packages/ui_drop/1.0.0/delete", {method: "POST",
             body: new URLSearchParams({csrf: token})}).then(r => r.status)""",
        token,
    )
    assert delete == 403
    assert [p.version for p in runner.list_packages()] == ["1.0.0"]

    page.set_viewport_size({"width": 390, "height": 800})
    page.goto("/packages")
    expect(row(page, "1.0.0")).to_be_visible()
    wide: Any = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 400
