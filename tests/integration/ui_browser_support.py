"""Helpers of the web UI's browser tests: Debian's Chromium driven by Playwright (no browser
is ever downloaded), skipped with a reason when it is missing, except under ``CI=true``
where the tests must run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"the browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + "; under CI=true they must run")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save a screenshot of each page: ``$CLOACINA_UI_ARTIFACTS`` (CI keeps
    it; ``docs/screenshots`` refreshes the README's), else a temporary directory."""
    chosen = os.environ.get("CLOACINA_UI_ARTIFACTS")
    if chosen:
        path = Path(chosen)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("ui-screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("the browser tests need playwright (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield chromium
        finally:
            chromium.close()
