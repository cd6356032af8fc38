"""How values look in human-readable output: durations, times, statuses, and text that came
from tasks made safe to print."""

from __future__ import annotations

import re
import time
from datetime import datetime

from rich.text import Text

# ---- text from tasks ---------------------------------------------------------------------------
# What a task wrote (its errors, skip reasons, tracebacks, context, event details) must not
# drive the terminal: C0 controls (ESC starts escape sequences that recolour, move the cursor,
# retitle the window; CR and BS overwrite what was printed), DEL, C1 controls (U+009B is a CSI
# on some terminals) and the Unicode bidirectional controls that reorder what is shown. They
# are printed as escapes (``\x1b``, ``\u202e``) instead. Newline and tab are kept where
# several lines are shown.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str, *, multiline: bool = False) -> str:
    r"""``text`` with the characters that could drive a terminal written as escapes (ESC
    prints as the four characters ``\x1b``, a newline as ``\n``); ``multiline`` keeps
    newlines and tabs."""
    pattern = _UNSAFE_MULTILINE if multiline else _UNSAFE_LINE
    return pattern.sub(_escape, text)


def safe_text(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """Text that came from a task (or a user's code), ready to print: control characters
    escaped and nothing read as markup (``[bold]`` prints as it is)."""
    return Text(escape_controls(str(value), multiline=multiline), style=style)


# JSON text: the encoder escapes C0 controls itself; these others become \uXXXX (still JSON,
# and the same data to a parser).
_UNSAFE_JSON = re.compile(f"[\x7f-\x9f{_BIDI}]")


def escape_json_controls(text: str) -> str:
    r"""JSON text (``ensure_ascii=False``) with DEL, C1 and bidirectional controls written as
    ``\uXXXX``: safe on a terminal, equal data for a JSON parser."""
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
    """The last ``lines`` lines of ``text`` (split at newlines only: a carriage return or
    other separator stays in its line, to be shown escaped)."""
    parts = text.rstrip().split("\n")
    if len(parts) <= lines:
        return "\n".join(parts)
    return "\n".join(["  ...", *parts[-lines:]])
