"""How commands fail and what they exit with: user errors, Ctrl-C, a run's exit code."""

from __future__ import annotations

from typing import IO, Any

import click
from rich.text import Text

from cloacina.cli.consoles import err_console
from cloacina.cli.formatting import safe_text
from cloacina.model.status import ExecutionStatus


class CliError(click.ClickException):
    """A user error: printed as ``error: <message>`` in red on stderr, no traceback."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        print_error(self.format_message())


class CliInterrupted(CliError):
    """The user pressed Ctrl-C."""

    exit_code = 130


def print_error(message: str) -> None:
    """``error: <message>`` in red on stderr (escaped: messages quote tasks and modules)."""
    err_console().print(
        Text.assemble(("error: ", "bold red"), safe_text(message, "red", multiline=True))
    )


def exit_code_for(status: str) -> int:
    return 0 if status == ExecutionStatus.COMPLETED else 1
