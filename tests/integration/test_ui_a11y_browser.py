"""The web UI's accessibility in a real browser (Chromium, driven by Playwright): sign-in
and the way to a run and its buttons with the keyboard alone, a visible focus on each stop,
the skip link, labelled fields, live regions, no horizontal page overflow at a phone's
390 px, and the dark theme that follows the system setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.sync_api import Browser, Page, expect

from .server_support import Live
from .test_ui_browser import TIMEOUT, Gate, gate, live, signed_in
from .ui_browser_support import browser, shots

__all__ = ["browser", "gate", "live", "shots"]  # the fixtures, used by name

#: What the focused element is, and whether its focus can be seen.
FOCUSED = """() => {
  const el = document.activeElement;
  const s = getComputedStyle(el);
  // A date-time field's last stop is its picker button, inside the field's shadow tree:
  // the field itself is then not :focus and Chromium rings the button with its own style.
  const picker = el.type === 'datetime-local' && !el.matches(':focus');
  const ring = picker || (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0);
  return {url: location.pathname, html: el.outerHTML.slice(0, 200), tag: el.tagName,
          href: el.getAttribute('href'), text: (el.innerText || el.value || '').trim(),
          cls: el.className, id: el.id, visible: ring || s.boxShadow !== 'none'};
}"""

#: The page's width beyond the viewport, and what sticks out outside a scroll container.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) continue;
    let up = el.parentElement, scrolled = false;
    while (up && !scrolled) {
      scrolled = ['auto', 'scroll'].includes(getComputedStyle(up).overflowX);
      up = up.parentElement;
    }
    const right = Math.round(box.right);
    if (!scrolled) out.push(`${el.tagName}#${el.id}.${el.className} right=${right}`);
  }
  return {scroll: document.documentElement.scrollWidth, width, out: out.slice(0, 10)};
}"""


def focused(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(FOCUSED)
    return found


def tab_to(page: Page, wanted: Any, most: int = 120) -> dict[str, Any]:
    """Press Tab until ``wanted(focused)`` holds; each stop must show its focus."""
    for _ in range(most):
        page.keyboard.press("Tab")
        now = focused(page)
        assert now["tag"] != "BODY", "Tab left the page before reaching the element"
        assert now["visible"], f"no visible focus on {now}"
        if wanted(now):
            return now
    raise AssertionError(f"not reached with {most} presses of Tab")


def test_keyboard_only_sign_in_and_run(browser: Browser, live: Live, gate: Gate) -> None:
    execution_id = gate.start(live)
    context = browser.new_context(base_url=live.base, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto("/")
    expect(page.get_by_label("API key")).to_be_focused()  # the one field, focused at once
    page.keyboard.type(live.api.keys["operator"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/runs")

    # The first stop is the skip link, shown when focused; Enter moves past the header.
    first = tab_to(page, lambda f: True, most=1)
    assert first["text"] == "Skip to content"
    box = page.locator("a.skip").bounding_box()
    assert box is not None and box["y"] >= 0
    page.keyboard.press("Enter")
    assert focused(page)["id"] == "main"

    tab_to(page, lambda f: f["href"] == f"/runs/{execution_id}")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/runs/{execution_id}")

    # The run's Cancel button: reached by Tab, pressed with Space, confirmed.
    asked: list[str] = []

    def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    tab_to(page, lambda f: f["tag"] == "BUTTON" and f["text"] == "Cancel")
    page.keyboard.press("Space")
    page.wait_for_url(f"**/runs/{execution_id}?done=cancel")
    assert asked == ["Cancel this run?"]
    assert live.api.state.primary.get_execution_status(execution_id).value == "cancelled"
    context.close()


def test_keyboard_through_the_header_and_filters(browser: Browser, live: Live, gate: Gate) -> None:
    execution_id = gate.start(live)
    page = signed_in(browser, live, "admin")
    for label in ("Workers", "Audit"):
        page.goto("/runs")
        tab_to(page, lambda f, label=label: f["tag"] == "A" and f["text"] == label)
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/{label.lower()}")
    # The audit filter: typed in a labelled field, submitted with Enter, no mouse.
    page.get_by_label("Action").focus()
    page.keyboard.type("nothing.such")
    page.keyboard.press("Enter")
    expect(page.get_by_text("No audit entries match.")).to_be_visible()
    # Every field of every page in reach has a label.
    for path in ("/runs", "/workers", "/audit", f"/runs/{execution_id}"):
        page.goto(path)
        unlabelled = page.evaluate(
            """() => Array.from(document.querySelectorAll(
                   'input:not([type=hidden]), select, textarea'))
                 .filter(el => !el.labels || el.labels.length === 0)
                 .filter(el => !el.getAttribute('aria-label'))
                 .map(el => el.name || el.id)"""
        )
        assert unlabelled == [], f"{path}: fields without a label: {unlabelled}"


def test_tenant_switcher_waits_for_the_keyboard(browser: Browser, live: Live) -> None:
    page = signed_in(browser, live, "admin")
    page.evaluate("window.notReloaded = true")
    switcher = page.get_by_label("Tenant")
    switcher.focus()
    page.keyboard.press("ArrowDown")  # changes a closed select at once
    expect(switcher).to_have_value(live.api.other_tenant)
    page.wait_for_timeout(1000)  # time enough for a submit to have left the page
    assert page.evaluate("window.notReloaded") is True
    tab_to(page, lambda f: f["tag"] == "BUTTON" and f["text"] == "Switch", most=1)
    page.keyboard.press("Enter")
    expect(page.get_by_label("Tenant")).to_have_value(live.api.other_tenant)
    assert page.evaluate("window.notReloaded") is None  # a new page, of the other tenant


def test_live_regions_are_announced(browser: Browser, live: Live) -> None:
    page = signed_in(browser, live, "admin")
    page.goto("/workers")
    # Its status line is announced; the table it sums up, refreshed every 2 s, is not.
    expect(page.get_by_role("status")).to_have_attribute("aria-live", "polite")
    expect(page.get_by_role("status")).to_contain_text("1 alive")
    expect(page.locator("#workers")).to_have_attribute("aria-live", "off")
    page.goto("/audit")
    expect(page.get_by_role("status")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#audit-results")).not_to_have_attribute("aria-live", "polite")


PHONE_PAGES = ("/", "/runs", "/runs/{run}", "/workers", "/audit", "/workflows", "/packages")


@pytest.mark.parametrize("path", PHONE_PAGES)
def test_phone_width_has_no_page_overflow(
    browser: Browser, live: Live, gate: Gate, shots: Path, path: str
) -> None:
    execution_id = gate.start(live)
    context = browser.new_context(base_url=live.base, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    if path != "/":
        page.goto("/")
        page.fill("#api_key", live.api.keys["admin"])
        page.press("#api_key", "Enter")
        page.wait_for_url("**/runs")
    page.goto(path.format(run=execution_id))
    expect(page.locator("main h1")).to_be_visible()
    if path == "/runs":
        expect(page.locator(f'tr[data-id="{execution_id}"]')).to_be_visible()
        page.screenshot(path=str(shots / "runs-phone.png"), full_page=True)
    found = page.evaluate(OVERFLOW)
    assert found["scroll"] <= found["width"], f"{path} overflows at 390 px: {found}"
    assert found["out"] == [], f"{path}: outside any scroll container: {found['out']}"
    context.close()


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_theme_follows_the_system(
    browser: Browser, live: Live, gate: Gate, shots: Path, scheme: Literal["dark", "light"]
) -> None:
    execution_id = gate.start(live)
    context = browser.new_context(
        base_url=live.base, viewport={"width": 1280, "height": 800}, color_scheme=scheme
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto("/")
    page.fill("#api_key", live.api.keys["admin"])
    page.press("#api_key", "Enter")
    page.wait_for_url("**/runs")
    expect(page.locator(f'tr[data-id="{execution_id}"]')).to_be_visible()
    background, text = "rgb(15, 20, 25)", "rgb(230, 237, 243)"
    if scheme == "light":
        background, text = "rgb(255, 255, 255)", "rgb(27, 31, 36)"
    for path in ("/runs", f"/runs/{execution_id}", "/workers", "/audit", "/workflows", "/packages"):
        page.goto(path)
        colours = page.evaluate(
            "() => [getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.body).color,"
            " getComputedStyle(document.querySelector('input, select, button')).backgroundColor]"
        )
        assert colours == [background, text, background], f"{path} in {scheme}: {colours}"
        if path == "/runs" and scheme == "dark":
            page.screenshot(path=str(shots / "runs-dark.png"))
    context.close()
