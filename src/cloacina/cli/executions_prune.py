"""``cloacina executions prune``: removing finished runs older than a given age."""

from __future__ import annotations

import click
from rich.text import Text

from cloacina.cli.actor import acts_locally
from cloacina.cli.consoles import out_console
from cloacina.cli.databases import open_existing_runner
from cloacina.cli.durations import DURATION, fmt_span
from cloacina.cli.execution_lookup import where
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option


def _runs(n: int) -> str:
    return "1 finished run" if n == 1 else f"{n} finished runs"


@click.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=DURATION,
    required=True,
    metavar="DURATION",
    help="Remove runs that finished longer ago than this: 30d, 12h, 90m, 0s (all finished).",
)
@db_option
@tenant_option
@click.option("--dry-run", is_flag=True, help="Only count the runs that would be removed.")
@click.pass_context
@acts_locally
def prune_command(
    ctx: click.Context, older_than: float, db: str | None, tenant: str | None, dry_run: bool
) -> None:
    """Remove finished workflow runs (completed, failed or cancelled) older than --older-than,
    with their tasks, outputs and events. Running, paused and pending runs are never removed.
    """
    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    with open_existing_runner(url, tenant_name, read_only=dry_run) as runner:  # pruning writes
        if dry_run:
            count = runner.count_prunable(older_than)
        else:
            count = runner.prune_executions(older_than)
    place = where(url, tenant_name)
    age = fmt_span(older_than)
    verb = "Would remove" if dry_run else "Removed"
    out_console().print(
        Text(f"{verb} {_runs(count)} older than {age} from {place}."), soft_wrap=True
    )
