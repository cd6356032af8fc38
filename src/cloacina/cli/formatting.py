"""How values look in human-readable output: durations, times, statuses."""

from __future__ import annotations

import time
from datetime import datetime

from rich.text import Text

STATUS_STYLES: dict[str, str] = {
    "completed": "green",
    "failed": "bold red",
    "skipped": "yellow",
    "cancelled": "magenta",
    "paused": "yellow",
    "running": "cyan",
    "ready": "blue",
    "pending": "dim",
}


def fmt_duration(seconds: float | None) -> str:
    """``215ms``, ``1.25s``, ``2m 05s``, ``1h 02m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def fmt_time(value: datetime | None) -> str:
    """A timestamp in local time, ``-`` when unknown."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


#: An icon per status: (terminal that can print Unicode, plain ASCII).
STATUS_ICONS: dict[str, tuple[str, str]] = {
    "completed": ("✓", "+"),
    "failed": ("✗", "x"),
    "skipped": ("↷", "~"),
    "cancelled": ("■", "#"),
    "paused": ("‖", "="),
    "running": ("▶", ">"),
    "ready": ("○", "o"),
    "pending": ("·", "."),
}


def status_text(status: str, icon: bool | None = None) -> Text:
    """``status`` in its colour; with ``icon`` (True: Unicode, False: ASCII) an icon first."""
    text = str(status)
    if icon is not None:
        pair = STATUS_ICONS.get(text)
        if pair is not None:
            text = f"{pair[0] if icon else pair[1]} {text}"
    return Text(text, style=STATUS_STYLES.get(str(status), ""))


def elapsed(started: datetime | None, finished: datetime | None, status: str) -> float | None:
    """A run's or task's duration; for one still running, the time it has run so far."""
    if started is None:
        return None
    if finished is not None:
        return (finished - started).total_seconds()
    if status in ("running", "paused"):
        return time.time() - started.timestamp()
    return None


def tail(text: str, lines: int = 12) -> str:
    """The last ``lines`` lines of ``text``."""
    parts = text.rstrip().splitlines()
    if len(parts) <= lines:
        return "\n".join(parts)
    return "\n".join(["  ...", *parts[-lines:]])
