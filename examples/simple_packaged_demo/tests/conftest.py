"""Tasks sleep to make the demo's progress visible; not in tests."""

from __future__ import annotations

import os

os.environ["SIMPLE_DEMO_STEP_DELAY"] = "0"
