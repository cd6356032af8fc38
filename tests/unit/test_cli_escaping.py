"""Text that came from tasks is printed escaped, never as terminal control sequences nor as
rich markup (issue 9.21)."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime

from rich.console import Console

from cloacina.cli.follow import EventPrinter
from cloacina.cli.formatting import escape_controls, escape_json_controls, safe_text, tail
from cloacina.cli.json_output import dump_json, print_json_block
from cloacina.service.types import ExecutionEvent

EVIL = "bad \x1b[31mRED\x1b[0m [red]x[/red] \x9b2J \u202eevil\x07\rover\x08 end\nline2\ttab"


def console(terminal: bool = False) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, force_terminal=terminal, highlight=False), out


def test_escape_controls_single_line() -> None:
    assert escape_controls(EVIL) == (
        "bad \\x1b[31mRED\\x1b[0m [red]x[/red] \\x9b2J \\u202eevil\\x07\\rover\\x08 end"
        "\\nline2\\ttab"
    )


def test_escape_controls_multiline_keeps_newline_and_tab_only() -> None:
    assert escape_controls(EVIL, multiline=True) == (
        "bad \\x1b[31mRED\\x1b[0m [red]x[/red] \\x9b2J \\u202eevil\\x07\\rover\\x08 end\nline2\ttab"
    )


def test_ordinary_text_is_unchanged() -> None:
    text = "naïve café — 日本語 ✓ [brackets] back\\slash"
    assert escape_controls(text) == text
    assert escape_controls(text, multiline=True) == text


def test_safe_text_prints_markup_literally_and_no_escape_byte() -> None:
    con, out = console()
    con.print(safe_text(EVIL, "red", multiline=True))
    printed = out.getvalue()
    assert "\x1b" not in printed and "\x9b" not in printed and "\u202e" not in printed
    assert "[red]x[/red]" in printed
    assert "\\x1b[31mRED" in printed


def test_safe_text_on_a_terminal_only_has_rich_own_styles() -> None:
    con, out = console(terminal=True)
    con.print(safe_text(EVIL, "red"))
    printed = out.getvalue()
    assert "\x1b[31mRED" not in printed  # the task's sequence is not passed through
    assert "\\x1b[31mRED" in printed


def test_json_escapes_are_lossless() -> None:
    data = {"k\x1b": EVIL, "c1\x9b": ["\u202e", "\x7f"]}
    text = dump_json(data)
    assert json.loads(text) == data
    for raw in ("\x1b", "\x9b", "\u202e", "\x7f", "\x07", "\r"):
        assert raw not in text
    assert escape_json_controls('"\x9b"') == '"\\u009b"'


def test_print_json_block_keeps_the_escapes() -> None:
    for terminal in (False, True):
        con, out = console(terminal)
        print_json_block(con, {"k": "\x9b31m \u202e [bold]b[/bold]"})
        printed = out.getvalue()
        assert "\x9b" not in printed and "\u202e" not in printed
        assert "\\u009b31m" in printed and "\\u202e" in printed
        assert "[bold]b[/bold]" in printed


def test_tail_splits_at_newlines_only() -> None:
    assert tail("a\rb\nc", 5) == "a\rb\nc"


def test_event_printer_escapes_errors_and_reasons() -> None:
    con, out = console()
    printer = EventPrinter(con, time.time())
    for event, detail in (
        ("task_failed", {"error": EVIL}),
        ("task_retry_scheduled", {"error": EVIL, "retry_in": 1.0}),
        ("task_skipped", {"reason": EVIL}),
    ):
        printer(
            ExecutionEvent(1, "e", event, datetime.now(UTC), task_id="t", attempt=1, detail=detail)
        )
    printed = out.getvalue()
    assert "\x1b" not in printed and "\x9b" not in printed and "\r" not in printed
    assert printed.count("[red]x[/red]") == 3
    assert printed.count("\\x1b[31mRED") == 3
    assert len(printed.strip().split("\n")) == 3  # one line per event: newlines escaped
