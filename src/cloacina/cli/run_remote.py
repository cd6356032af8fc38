"""``cloacina run WORKFLOW --server URL``: the run happens on the server; this process starts
it, follows its event stream and shows the result as ``cloacina run`` does locally."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from cloacina.cli.consoles import err_console
from cloacina.cli.errors import CliError, CliInterrupted, exit_code_for, print_error
from cloacina.cli.executions_show import package_version_of
from cloacina.cli.follow import EventPrinter, follow
from cloacina.cli.json_output import dump_json, result_json
from cloacina.errors import ExecutionTimeoutError, InvalidStateError, WorkflowNotFoundError
from cloacina.model.status import WorkflowResult
from cloacina.registry.registry import WorkflowRef

if TYPE_CHECKING:
    from cloacina.client import Client


def _cancel(client: Client, execution_id: str, reason: str) -> WorkflowResult:
    try:
        client.cancel(execution_id, reason=reason)
    except InvalidStateError:  # it ended meanwhile
        pass
    return client.get_execution(execution_id)


def run_remote(
    ctx: click.Context,
    client: Client,
    ref: WorkflowRef,
    input_context: dict[str, Any],
    timeout: float | None,
    as_json: bool,
    idempotency_key: str | None = None,
) -> None:
    """Run ``ref`` on the server to its end and show it; exits with ``cloacina run``'s
    codes (Ctrl-C and SIGTERM cancel the run on the server)."""
    from cloacina.cli.run import Terminated, show_result, sigterm_interrupts

    with client:
        try:
            info = client.describe_workflow(str(ref))
        except WorkflowNotFoundError as exc:
            raise CliError(str(exc)) from None
        err = err_console()
        live = not as_json and err.is_terminal
        problem: str | None = None
        execution_id: str | None = None
        with sigterm_interrupts():
            try:
                execution_id = client.schedule_workflow(
                    str(ref), input_context, idempotency_key=idempotency_key
                )
                if live:
                    err.print(
                        f"[bold]Running[/] {info.name} ({len(info.tasks)} tasks) on "
                        f"{client.url}, execution {execution_id}"
                    )
                try:
                    if live:
                        printer = EventPrinter(err, time.time())
                        result = follow(client, execution_id, printer, timeout=timeout)
                    else:
                        result = client.wait(execution_id, timeout)
                except ExecutionTimeoutError:
                    reason = (
                        f"timed out: did not finish within {timeout:g}s (cloacina run --timeout)"
                    )
                    problem = (
                        f"workflow execution {execution_id} did not finish within {timeout:g}s; "
                        "it was cancelled"
                    )
                    result = _cancel(client, execution_id, reason)
            except (KeyboardInterrupt, Terminated) as exc:
                what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
                if execution_id is None:
                    raise CliInterrupted(
                        f"{what} while the run was being started; if it was created, "
                        "`cloacina executions list --status running --server ...` shows it"
                    ) from None
                _cancel(client, execution_id, f"cloacina run was {what}")
                raise CliInterrupted(
                    f"{what}: workflow execution {execution_id} was cancelled"
                ) from None
        package_version = package_version_of(client, result)
    max_attempts = {tid: t.max_attempts or 1 for tid, t in result.tasks.items()}
    if as_json:
        data = result_json(result, max_attempts)
        data["package_version"] = package_version
        click.echo(dump_json(data))
    else:
        show_result(result, max_attempts, package_version)
    if problem:
        print_error(problem)
    ctx.exit(exit_code_for(result.status))
