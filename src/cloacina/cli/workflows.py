"""``cloacina workflows ...``: look at the workflows that modules define.

The group holds ``graph`` (draw a workflow's DAG); further subcommands attach to
:data:`workflows_group` with ``@workflows_group.command(...)``.
"""

from __future__ import annotations

import click

from cloacina.cli.common import F, fancy, out_console
from cloacina.cli.graph_render import FORMATS, render_workflow
from cloacina.cli.run import check_workflow, import_modules
from cloacina.model.workflow import catalog


@click.group("workflows")
def workflows_group() -> None:
    """Inspect workflows: draw their task graphs."""


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


@workflows_group.command("graph")
@click.argument("name")
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
def graph_command(name: str, modules: tuple[str, ...], fmt: str) -> None:
    """Draw the task graph (DAG) of workflow NAME.

    Tasks with retries, a timeout, a trigger rule other than all_success or an async body
    are marked. Render the other formats with e.g. `... --format dot | dot -Tsvg > wf.svg`
    or paste the Mermaid text into a Markdown ```mermaid block.
    """
    import_modules(modules)
    check_workflow(name, modules)
    wf = catalog.get(name)
    click.echo(render_workflow(wf, fmt, unicode=fancy(out_console())), nl=False)
