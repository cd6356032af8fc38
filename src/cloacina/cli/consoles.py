"""The rich consoles commands print on: stdout for output, stderr for errors and progress."""

from __future__ import annotations

from rich.console import Console


def out_console() -> Console:
    """A console on stdout (plain text when stdout is not a terminal)."""
    return Console(soft_wrap=False, highlight=False)


def err_console() -> Console:
    """A console on stderr."""
    return Console(stderr=True, soft_wrap=True, highlight=False)


def fancy(console: Console) -> bool:
    """Whether ``console`` can print non-ASCII symbols."""
    return console.encoding.lower().replace("-", "").startswith("utf")
