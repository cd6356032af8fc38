"""``cloacina workflows list|graph|stats``: the workflows registered in a database (packages)
or defined by modules, their task graphs, and their runs' statistics
(:mod:`~cloacina.cli.workflows_stats`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from cloacina.cli.consoles import fancy, out_console
from cloacina.cli.databases import require_tenant, sqlite_file
from cloacina.cli.errors import CliError
from cloacina.cli.formatting import fmt_time
from cloacina.cli.graph_render import FORMATS, render_workflow
from cloacina.cli.json_output import echo_json
from cloacina.cli.naming import module_workflow, parse_ref
from cloacina.cli.options import F, db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.remote import open_client, server_options
from cloacina.cli.render import new_table, shrink_to_fit
from cloacina.cli.run import check_workflow, import_modules
from cloacina.cli.workflows_stats import stats_command
from cloacina.errors import SchemaError, WorkflowNotFoundError
from cloacina.model.namespace import EMBEDDED_PACKAGE
from cloacina.model.status import to_datetime
from cloacina.model.workflow import Workflow, catalog
from cloacina.registry.registry import PackageInfo
from cloacina.runner import DefaultRunner
from cloacina.service.types import WorkflowInfo


@click.group("workflows")
def workflows_group() -> None:
    """Inspect workflows: list the registered ones, draw their task graphs, show where
    their runs spend their time."""


workflows_group.add_command(stats_command)


def module_option(func: F) -> F:
    """``--module/-m MOD`` (repeatable), as ``cloacina run`` takes it."""
    return click.option(
        "--module",
        "-m",
        "modules",
        multiple=True,
        metavar="MOD",
        help="Module that defines the workflow: a dotted name (the current directory is on "
        "the path) or a path to a .py file. Repeatable.",
    )(func)


@contextmanager
def open_registry(url: str, tenant: str) -> Iterator[DefaultRunner | None]:
    """A runner that executes nothing, to read the registry (None if the database is new)."""
    require_tenant(url, tenant)  # a clear error for a tenant that was never created
    path = sqlite_file(url, tenant)
    if path is not None and not path.exists():
        yield None
        return
    try:
        # Read-only: listing migrates nothing, and works on a database it cannot write.
        runner = DefaultRunner(url, tenant=tenant, execute_tasks=False, read_only=True)
    except SchemaError as exc:
        if exc.revision is not None:
            raise  # an older or newer schema: the message says what to do
        yield None  # no Cloacina tables yet, so nothing registered
        return
    with runner:
        yield runner


@workflows_group.command("list")
@db_option
@tenant_option
@server_options
@module_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(
    ctx: click.Context,
    db: str | None,
    tenant: str | None,
    modules: tuple[str, ...],
    as_json: bool,
) -> None:
    """List the workflows registered in the database (from packages) and those the given
    modules define. The newest version of a package is the default for new runs."""
    client = open_client(ctx, tenant)
    if client is not None:
        if modules:
            client.close()
            raise CliError(
                "--module lists the workflows a module defines here; with --server the "
                "server's workflows are listed"
            )
        with client:
            rows = _remote_rows(client.list_packages(), client.describe_workflows())
        _show_rows(rows, as_json)
        return
    url = resolve_db(ctx, db)
    import_modules(modules)
    rows = []
    with open_registry(url, resolve_tenant(ctx, tenant)) as runner:
        packages = runner.list_packages() if runner is not None else []
        for pkg in reversed(packages):  # newest first
            for wf_name, version in pkg.workflow_versions:
                default = runner is not None and _is_default(runner, wf_name, pkg.id)
                rows.append(
                    {
                        "workflow": wf_name,
                        "source": f"{pkg.package} {pkg.version}",
                        "package_id": pkg.id,
                        "version": version,
                        "default": default,
                        "signed_by": pkg.signer,
                        "registered_at": fmt_time(to_datetime(pkg.registered_at)),
                    }
                )
    for wf in catalog.all():
        if modules:
            rows.append(_embedded_row(wf))
    _show_rows(rows, as_json)


def _remote_rows(
    packages: list[PackageInfo], workflows: list[WorkflowInfo]
) -> list[dict[str, Any]]:
    """The rows of ``workflows list`` from a server: every registered version (newest
    package first), then the workflows the server's own modules define."""
    defaults = {(w.name, w.package, w.version) for w in workflows}
    rows: list[dict[str, Any]] = []
    for pkg in reversed(packages):
        for wf_name, version in pkg.workflow_versions:
            rows.append(
                {
                    "workflow": wf_name,
                    "source": f"{pkg.package} {pkg.version}",
                    "package_id": pkg.id,
                    "version": version,
                    "default": pkg.default and (wf_name, pkg.package, version) in defaults,
                    "signed_by": pkg.signer,
                    "registered_at": fmt_time(to_datetime(pkg.registered_at)),
                }
            )
    for wf in workflows:
        if wf.package == EMBEDDED_PACKAGE:
            rows.append(
                {
                    "workflow": wf.name,
                    "source": "the server's modules",
                    "package_id": None,
                    "version": wf.version,
                    "default": True,
                    "signed_by": None,
                    "registered_at": None,
                }
            )
    return rows


def _show_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        echo_json(rows)
        return
    console = out_console()
    if not rows:
        console.print(
            "no workflows: register a package with `cloacina package register FILE`, or "
            "pass --module to list the workflows a module defines"
        )
        return
    table = new_table("Workflows")
    # Names and ids fold, never cut; at 80 columns the registration date gives way first.
    table.add_column("workflow", overflow="fold", min_width=8)
    table.add_column("source", overflow="fold", min_width=8)
    table.add_column("version", no_wrap=True)
    table.add_column("default", no_wrap=True)
    table.add_column("registered", no_wrap=True)
    table.add_column("signed by", overflow="fold")
    for row in rows:
        table.add_row(
            row["workflow"],
            row["source"],
            row["version"][:12],
            "✓" if row["default"] else "",
            row["registered_at"] or "",
            row["signed_by"] or "",
        )
    shrink_to_fit(console, table, {"registered": 11})
    console.print(table)


def _is_default(runner: DefaultRunner, name: str, package_id: str) -> bool:
    """Whether new runs of ``name`` take the version from package ``package_id``."""
    current = runner.packages.find(name)
    return current is not None and current.origin.package_id == package_id


def _embedded_row(wf: Workflow) -> dict[str, Any]:
    return {
        "workflow": wf.name,
        "source": f"module {wf.source.__module__ if wf.source else '?'}",
        "package_id": None,
        "version": wf.version,
        "default": True,
        "signed_by": None,
        "registered_at": None,
    }


@workflows_group.command("graph")
@click.argument("name")
@db_option
@tenant_option
@module_option
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text: a drawing for the terminal; mermaid: a Mermaid flowchart; dot: Graphviz.",
)
@click.pass_context
def graph_command(
    ctx: click.Context,
    name: str,
    db: str | None,
    tenant: str | None,
    modules: tuple[str, ...],
    fmt: str,
) -> None:
    """Draw the task graph (DAG) of workflow NAME: from --module, or else the default
    version registered in the database. NAME may be PACKAGE::WORKFLOW, WORKFLOW@VERSION
    or PACKAGE::WORKFLOW@VERSION (a registered package's version).

    Tasks with retries, a timeout, a trigger rule other than all_success or an async body
    are marked. Render the other formats with e.g. `... --format dot | dot -Tsvg > wf.svg`
    or paste the Mermaid text into a Markdown ```mermaid block.
    """
    ref = parse_ref(name)
    wf = None
    if modules:
        import_modules(modules)
        wf = module_workflow(ref, modules)  # what the user names explicitly wins
    if wf is None:
        with open_registry(resolve_db(ctx, db), resolve_tenant(ctx, tenant)) as runner:
            if runner is None:
                if modules:
                    check_workflow(ref.workflow, modules)
                raise click.UsageError(
                    "give --module MOD, or --db for a database where the workflow is registered"
                )
            try:
                wf = runner.resolve(str(ref))
            except WorkflowNotFoundError as exc:
                if modules and not ref.qualified:
                    check_workflow(ref.workflow, modules, runner.catalog.names())
                raise CliError(str(exc)) from None
    click.echo(render_workflow(wf, fmt, unicode=fancy(out_console())), nl=False)
