"""``cloacina executions list|show|watch|logs|cancel|pause|resume|rerun|rerun-failed|prune``:
the history of workflow runs, runs as they go, their tasks' output, controlling and rerunning
a run, and removing old ones.

One module per idea: :mod:`~cloacina.cli.executions_list`, :mod:`~cloacina.cli.executions_show`,
:mod:`~cloacina.cli.executions_watch` (with :mod:`~cloacina.cli.watch_view`,
:mod:`~cloacina.cli.watch_log` and :mod:`~cloacina.cli.watch_stall`),
:mod:`~cloacina.cli.executions_logs`, :mod:`~cloacina.cli.executions_control` and
:mod:`~cloacina.cli.executions_prune`; finding a
run from an id prefix is :mod:`~cloacina.cli.execution_lookup`.
"""

from __future__ import annotations

import click

from cloacina.cli.executions_control import cancel_command, pause_command, resume_command
from cloacina.cli.executions_list import list_command
from cloacina.cli.executions_logs import logs_command
from cloacina.cli.executions_prune import prune_command
from cloacina.cli.executions_rerun import rerun_command, rerun_failed_command
from cloacina.cli.executions_show import show_command
from cloacina.cli.executions_watch import watch_command


@click.group("executions")
def executions_group() -> None:
    """Inspect workflow executions (runs) stored in the database, or follow one live."""


for _command in (
    list_command,
    show_command,
    cancel_command,
    pause_command,
    resume_command,
    rerun_command,
    rerun_failed_command,
    watch_command,
    logs_command,
    prune_command,
):
    executions_group.add_command(_command)
