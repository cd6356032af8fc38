"""The web UI's vendored libraries are the pinned ones, with their licences, and ship in the
wheel's package data (scripts/vendor_ui.py refreshes them from the npm registry)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "src/cloacina/server/ui/static/vendor"


def test_vendored_files_match_their_pins() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/vendor_ui.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_library_carries_its_licence() -> None:
    recorded = json.loads((VENDOR / "VERSIONS.json").read_text())
    assert set(recorded) == {"htmx", "dagre"}
    for folder, entry in recorded.items():
        assert "LICENSE" in entry["files"], folder
        assert (VENDOR / folder / "LICENSE").read_text().strip()
