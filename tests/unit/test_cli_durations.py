"""Durations on the command line: ``30s``, ``5m``, ``2h``, ``30d`` or plain seconds."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cloacina.cli.durations import DURATION, fmt_span, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("30d", 2_592_000.0),
        ("1w", 604_800.0),
        ("250ms", 0.25),
        ("90", 90.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("0.5", 0.5),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        (" 10 s ", 10.0),
        ("2H", 7200.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "-5s", "5x", "5 m s", "1h30m", "abc", "1e3", "inf"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2_592_000.0, "30d"),
        (7200.0, "2h"),
        (90.0, "90s"),
        (300.0, "5m"),
        (0.0, "0s"),
        (0.5, "0.5s"),
    ],
)
def test_fmt_span_round_trips(seconds: float, text: str) -> None:
    assert fmt_span(seconds) == text
    assert parse_duration(text) == seconds


def test_duration_option() -> None:
    @click.command()
    @click.option("--after", type=DURATION, default=None)
    def cmd(after: float | None) -> None:
        click.echo(repr(after))

    runner = CliRunner()
    assert runner.invoke(cmd, ["--after", "5m"]).output == "300.0\n"
    assert runner.invoke(cmd, []).output == "None\n"
    bad = runner.invoke(cmd, ["--after", "soon"])
    assert bad.exit_code == 2
    assert "invalid duration 'soon'" in bad.output
    assert DURATION.convert(3, None, None) == 3.0
