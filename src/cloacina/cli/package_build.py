"""``cloacina package new|build``: a new workflow project, and building one into a
``.cloacina`` package."""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from cloacina.cli.consoles import err_console, out_console
from cloacina.cli.errors import CliError
from cloacina.cli.json_output import echo_json
from cloacina.cli.package_files import PackageFailed
from cloacina.errors import PackageError
from cloacina.packaging.build import build, fmt_size
from cloacina.packaging.scaffold import scaffold


# ---- new -------------------------------------------------------------------------------------
@click.command("new", short_help="Create a new workflow project.")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory of the new project [default: ./NAME].",
)
def new_command(name: str, directory: str | None) -> None:
    """Create a workflow project NAME: pyproject.toml, a workflow, its tests, a README."""
    try:
        made = scaffold(name, Path(directory) if directory else None)
    except PackageError as exc:
        raise CliError(str(exc)) from None
    console = out_console()
    console.print(Text(f"Created workflow project {name!r} in {made.root}", style="bold green"))
    for path in made.files:
        console.print(f"  {path}")
    console.print(
        Text.assemble(
            "\nNext:\n",
            (f"  cd {made.root}\n", "cyan"),
            ("  python -m pytest              ", "cyan"),
            "# run the workflow's tests\n",
            ("  cloacina package build        ", "cyan"),
            f"# -> dist/{made.package}-0.1.0.cloacina",
        )
    )


# ---- build -----------------------------------------------------------------------------------
@click.command("build", short_help="Build a project into a .cloacina package.")
@click.argument("path", default=".", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory to write the package to [default: PATH/dist].",
)
@click.option(
    "--allow-native",
    is_flag=True,
    help="Accept dependencies with compiled code; the package then runs only on this "
    "platform (recorded in metadata.json).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the package's path.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON (progress on stderr)."
)
def build_command(
    path: str, output: str | None, allow_native: bool, quiet: bool, as_json: bool
) -> None:
    """Build the workflow project at PATH into a reproducible .cloacina package.

    The project is imported in a clean subprocess, its @packaged_workflow classes are
    validated, its pure-Python dependencies are vendored, and the same sources always give
    a byte-identical archive.
    """
    console = err_console() if as_json else out_console()  # stdout is for the JSON

    def log(line: str) -> None:
        if quiet:
            return
        if line.startswith("  "):
            console.print(Text(line), soft_wrap=True)
        else:
            console.print(
                Text("==> ", style="bold blue") + Text(line, style="bold"), soft_wrap=True
            )

    try:
        result = build(path, output, allow_native=allow_native, log=log)
    except PackageError as exc:
        raise PackageFailed(f"build failed: {exc}") from None
    if as_json:
        echo_json(
            {
                "file": str(result.path),
                "package": result.manifest.package,
                "version": result.manifest.version,
                "workflows": [w.name for w in result.manifest.workflows],
                "files": result.files,
                "size": result.size,
                "sha256": result.sha256,
            }
        )
        return
    if quiet:
        click.echo(str(result.path))
        return
    workflows = len(result.manifest.workflows)
    console.print(
        Text.assemble(
            ("Built ", "bold green"),
            (f"{result.manifest.package} {result.manifest.version}", "bold"),
            f": {workflows} workflow{'s' if workflows != 1 else ''}, "
            f"{result.files} files, {fmt_size(result.size)} -> ",
            (str(result.path), "cyan"),
        ),
        soft_wrap=True,
    )
