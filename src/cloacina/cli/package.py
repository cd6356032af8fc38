"""``cloacina package new|build|inspect|verify|sign|register|list|promote|unregister``:
workflow packages.

A package is a ``.cloacina`` archive built from a workflow project (DESIGN.md §6). The
commands are thin: the work is in :mod:`cloacina.packaging`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from cloacina.cli.consoles import err_console, fancy, out_console
from cloacina.cli.databases import display_url, require_tenant, sqlite_file
from cloacina.cli.errors import CliError
from cloacina.cli.formatting import fmt_time, iso
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.render import new_table
from cloacina.cli.workflows import open_registry
from cloacina.errors import (
    InvalidStateError,
    PackageError,
    PackageNotFoundError,
    UnsafePackageError,
    WorkflowNotFoundError,
)
from cloacina.model.namespace import SEPARATOR
from cloacina.model.status import to_datetime
from cloacina.packaging.archive import (
    MAX_SMALL_FILE_BYTES,
    PackageArchive,
    read_archive,
    read_file_capped,
    read_package_file,
)
from cloacina.packaging.build import build, fmt_size
from cloacina.packaging.manifest import TaskSpec, WorkflowSpec
from cloacina.packaging.scaffold import scaffold
from cloacina.packaging.signing import SIG_SUFFIX, sign_archive
from cloacina.packaging.verify import SignatureInfo, read_signature, verify_package
from cloacina.registry.registry import PackageInfo, version_order

if TYPE_CHECKING:
    from cloacina.runner import DefaultRunner


class PackageFailed(CliError):
    """The operation ran and failed (a build error, a package that does not verify)."""

    exit_code = 1


@click.group("package")
def package_group() -> None:
    """Build, check, sign and register .cloacina workflow packages.

    \b
    cloacina package new my_flows          # a new workflow project
    cloacina package build my_flows        # -> my_flows/dist/my_flows-0.1.0.cloacina
    cloacina package inspect FILE          # what is inside
    cloacina package verify FILE           # does the manifest match the code?
    cloacina package sign FILE --key K     # FILE.sig
    cloacina package register FILE         # store it in the database
    cloacina package list                  # what is registered, and which versions run
    cloacina package promote NAME VERSION  # make VERSION the default for new runs
    cloacina package unregister NAME VERSION
    """


# ---- helpers ---------------------------------------------------------------------------------
def _read_file(path: str, what: str = "package") -> bytes:
    """A package (or a signature or key) file's bytes: refused before it is read when it is
    not a regular file or over its size limit, never read past that limit."""
    try:
        if what == "package":
            return read_package_file(path)
        return read_file_capped(path, MAX_SMALL_FILE_BYTES, f"{what} file")
    except OSError as exc:
        raise CliError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    except UnsafePackageError as exc:  # too large
        raise PackageFailed(f"cannot read {what}: {exc}") from None
    except PackageError as exc:  # not a regular file
        raise CliError(f"cannot read {what}: {exc}") from None


def _sig_path(package: str) -> Path:
    return Path(package + SIG_SUFFIX)


def _signature_for(package: str, signature: str | None) -> tuple[bytes | None, Path | None]:
    """The signature bytes to use: ``--signature F``, else ``FILE.sig`` when it exists."""
    if signature is not None:
        return _read_file(signature, "signature"), Path(signature)
    default = _sig_path(package)
    if default.is_file():
        return _read_file(str(default), "signature"), default
    return None, None


def _checkable_signature(
    file: str, data: bytes, sig: bytes | None, path: Path | None, checked: bool
) -> bytes | None:
    """``sig``, unless nothing will check it and it is no signature of ``data`` at all
    (malformed, or made for other bytes): then a warning says it is ignored, rather than
    it being taken (or stored) silently."""
    if sig is None or checked:
        return sig  # a check gives the precise error
    info = read_signature(data, sig)
    if info.matches:
        return sig
    err_console().print(
        Text(f"warning: ignoring {path}, which is no signature of {file}: {info.error}", "yellow")
    )
    return None


def _open_package(path: str) -> tuple[bytes, PackageArchive]:
    data = _read_file(path)
    try:
        return data, read_archive(data)
    except PackageError as exc:
        raise PackageFailed(f"{path}: {exc}") from None


def trusted_key_option(func: Any) -> Any:
    return click.option(
        "--trusted-key",
        "trusted_keys",
        multiple=True,
        metavar="PUB",
        type=click.Path(exists=True),
        help="A trusted public key (.pub file, or a directory of them). Repeatable.",
    )(func)


# ---- new -------------------------------------------------------------------------------------
@package_group.command("new", short_help="Create a new workflow project.")
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
@package_group.command("build", short_help="Build a project into a .cloacina package.")
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


# ---- inspect ---------------------------------------------------------------------------------
def rule_text(rule: Mapping[str, Any]) -> str:
    """A trigger rule of a manifest as one line."""
    kind = str(rule.get("kind", "all_success"))
    if kind == "context_value":
        text = f"context[{rule.get('key')!r}] {rule.get('op')}"
        if "value" in rule:
            text += f" {rule['value']!r}"
        return text
    if kind in ("all_of", "any_of", "none_of"):
        return f"{kind}({', '.join(rule_text(r) for r in rule.get('rules', []))})"
    return kind


def task_notes(task: TaskSpec) -> list[str]:
    """What is special about a task: async, retries, timeout, trigger rule, command."""
    notes = []
    if task.command:
        notes.append("command: " + " ".join(task.command))
    if task.is_async:
        notes.append("async")
    attempts = int(task.retry.get("max_attempts", 1) or 1)
    if attempts > 1:
        delay = float(task.retry.get("initial_delay", 0.0))
        notes.append(
            f"retry {attempts}x {task.retry.get('backoff', 'exponential')} from {delay:g}s"
        )
    if task.timeout is not None:
        notes.append(f"timeout {task.timeout:g}s")
    if task.trigger_rule.get("kind", "all_success") != "all_success":
        notes.append(f"trigger {rule_text(task.trigger_rule)}")
    return notes


def workflow_tree(wf: WorkflowSpec) -> Tree:
    """The tasks of ``wf`` as a tree: roots first, each task under the last of its
    dependencies (in run order), the others named beside it."""
    title = Text.assemble(
        (wf.name, "bold"),
        (f"  version {wf.version[:12]}  ({wf.module}.{wf.qualname}, {len(wf.tasks)} tasks)", "dim"),
    )
    if wf.description:
        title.append(f"\n{wf.description}", style="italic")
    tree = Tree(title)
    order = {t.id: i for i, t in enumerate(wf.tasks)}
    nodes: dict[str, Tree] = {}
    for task in wf.tasks:  # the manifest lists tasks in run (topological) order
        label = Text(task.id, style="cyan")
        notes = task_notes(task)
        known = [d for d in task.dependencies if d in nodes]
        parent_id = max(known, key=lambda d: order[d]) if known else None
        others = [d for d in task.dependencies if d != parent_id]
        if others:
            label.append(f"  also after {', '.join(others)}", style="yellow")
        if notes:
            label.append("  [" + ", ".join(notes) + "]", style="dim")
        parent = nodes[parent_id] if parent_id is not None else tree
        nodes[task.id] = parent.add(label)
    return tree


def file_groups(archive: PackageArchive) -> list[tuple[str, int, int]]:
    """``(group, files, bytes)``: lib/ by top-level entry, other files one by one."""
    groups: dict[str, list[int]] = {}
    for name, content in archive.files.items():
        if name.startswith("lib/"):
            head, _, rest = name[4:].partition("/")
            key = f"lib/{head}/" if rest else f"lib/{head}"
        else:
            key = name
        entry = groups.setdefault(key, [0, 0])
        entry[0] += 1
        entry[1] += len(content)
    return [(k, v[0], v[1]) for k, v in sorted(groups.items())]


def _signature_json(info: SignatureInfo | None, path: Path | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {"file": str(path), "key": info.key, "matches": info.matches, "error": info.error}


def inspect_json(
    path: str, archive: PackageArchive, sig: SignatureInfo | None, sig_path: Path | None
) -> dict[str, Any]:
    m = archive.manifest
    return {
        "file": path,
        "sha256": archive.sha256,
        "size": len(archive.data),
        "fingerprint": archive.fingerprint,
        "metadata": archive.metadata,
        "manifest": {
            "package": m.package,
            "version": m.version,
            "modules": list(m.modules),
            "workflows": [w.to_data() for w in m.workflows],
        },
        "files": [
            {"path": n, "size": len(c), "executable": bool(archive.modes.get(n, 0) & 0o111)}
            for n, c in sorted(archive.files.items())
        ],
        "signature": _signature_json(sig, sig_path),
    }


def _signature_text(info: SignatureInfo | None, path: Path | None) -> Text:
    if info is None or path is None:
        return Text("not signed", style="dim")
    if not info.matches:
        return Text(f"{path}: INVALID ({info.error})", style="bold red")
    return Text.assemble(
        (f"signed by {info.key}", "green"),
        (f" ({path.name}; trust not checked: `package verify --trusted-key PUB`)", "dim"),
    )


@package_group.command("inspect", short_help="Show what a package holds.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def inspect_command(file: str, as_json: bool) -> None:
    """Show what package FILE holds: metadata, workflows and their task trees, files."""
    _, archive = _open_package(file)
    sig_bytes, sig_path = _signature_for(file, None)
    sig = read_signature(archive.data, sig_bytes) if sig_bytes is not None else None
    if as_json:
        echo_json(inspect_json(file, archive, sig, sig_path))
        return
    console = out_console()
    meta, m = archive.metadata, archive.manifest
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("package", Text(f"{m.package} {m.version}", style="bold"))
    for key, label in (("description", "description"), ("author", "author")):
        if meta.get(key):
            grid.add_row(label, str(meta[key]))
    python = str(meta.get("requires_python") or "any")
    if meta.get("python"):
        python += f" (built with {meta['python']})"
    grid.add_row("python", python)
    grid.add_row("builder", str(meta.get("builder", "?")))
    if meta.get("build_time"):
        grid.add_row("built", str(meta["build_time"]))
    grid.add_row("platform", str(meta.get("platform") or "any (pure Python)"))
    deps = meta.get("dependencies") or []
    grid.add_row("dependencies", ", ".join(map(str, deps)) if deps else "none")
    grid.add_row("modules", ", ".join(m.modules))
    grid.add_row("size", fmt_size(len(archive.data)))
    grid.add_row("sha256", archive.sha256)
    grid.add_row("fingerprint", archive.fingerprint)
    grid.add_row("signature", _signature_text(sig, sig_path))
    console.print(grid)
    console.print()
    console.print(Text(f"Workflows ({len(m.workflows)})", style="bold"))
    for wf in m.workflows:
        console.print(workflow_tree(wf))
    console.print()
    groups = file_groups(archive)
    total = sum(len(c) for c in archive.files.values())
    table = new_table(f"Files ({len(archive.files)}, {fmt_size(total)} uncompressed)")
    table.add_column("path")
    table.add_column("files", justify="right")
    table.add_column("size", justify="right")
    shown = groups[:25]
    for name, count, size in shown:
        executable = not name.endswith("/") and archive.modes.get(name, 0) & 0o111
        cell = Text(name) + (Text("  (executable)", style="green") if executable else Text())
        table.add_row(cell, str(count), fmt_size(size))
    if len(groups) > len(shown):
        rest = groups[len(shown) :]
        table.add_row(
            Text(f"... {len(rest)} more", style="dim"),
            str(sum(r[1] for r in rest)),
            fmt_size(sum(r[2] for r in rest)),
        )
    console.print(table)


# ---- verify ----------------------------------------------------------------------------------
@package_group.command("verify", short_help="Check a package against its own code (and signature).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@trusted_key_option
@click.option(
    "--signature",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The signature file [default: FILE.sig when it exists].",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the outcome as JSON (also when it fails: ok false and the problems).",
)
def verify_command(
    file: str, trusted_keys: tuple[str, ...], signature: str | None, as_json: bool
) -> None:
    """Check package FILE: safe paths and sizes, content fingerprint, the manifest against
    the code (imported from the package in a clean process), command executables, and with
    --trusted-key the signature. Exit 1 with the precise problem when anything is wrong."""
    console = out_console()
    data = _read_file(file)
    sig_bytes, sig_path = _signature_for(file, signature)
    sig_bytes = _checkable_signature(file, data, sig_bytes, sig_path, bool(trusted_keys))
    try:
        result = verify_package(data, signature=sig_bytes, trusted_keys=list(trusted_keys))
    except PackageError as exc:
        if as_json:
            echo_json({"file": file, "ok": False, "problems": [str(exc)]})
        raise PackageFailed(f"{file} does not verify: {exc}") from None
    m = result.archive.manifest
    if as_json:
        echo_json(
            {
                "file": file,
                "ok": result.ok,
                "package": m.package,
                "version": m.version,
                "sha256": result.archive.sha256,
                "fingerprint": result.archive.fingerprint,
                "files": len(result.archive.files),
                "workflows": [w.name for w in m.workflows],
                "matches_code": result.matches_code,
                "signature": result.signature,
                "signature_file": None if sig_path is None else str(sig_path),
                "signer": result.signer,
                "problems": list(result.problems),
            }
        )
        if not result.ok:
            _print_problems(err_console(), file, result.problems)
            raise click.exceptions.Exit(1)
        return
    mark = "✓" if fancy(console) else "+"
    console.print(
        f"{mark} archive {m.package} {m.version}: {len(result.archive.files)} files, "
        "safe paths and sizes, fingerprint OK"
    )
    console.print(f"  sha256 {result.archive.sha256}")
    if result.declared:
        tasks = sum(len(d.spec.tasks) for d in result.declared)
        console.print(
            f"{mark} code imported from the package declares {len(result.declared)} "
            f"workflow(s), {tasks} task(s)"
        )
    if result.matches_code:
        console.print(
            f"{mark} manifest matches the code: workflows, task ids, dependencies, versions"
        )
    if result.signature == "verified":
        console.print(f"{mark} signature by trusted key {result.signer} ({sig_path})")
    elif result.signature == "unchecked":
        console.print(
            Text(f"- signature {sig_path} present but not checked (give --trusted-key)", "yellow")
        )
    elif not trusted_keys:
        console.print(Text("- not signed", style="dim"))
    if not result.ok:
        _print_problems(err_console(), file, result.problems)
        raise click.exceptions.Exit(1)
    console.print(
        Text(
            f"OK: {file} matches its code ({', '.join(w.name for w in m.workflows)})",
            style="bold green",
        )
    )


def _print_problems(console: Console, file: str, problems: Sequence[str]) -> None:
    console.print(Text(f"FAILED: {file} does not verify:", style="bold red"))
    for problem in problems:
        console.print(Text(f"  - {problem}", style="red"))


# ---- sign ------------------------------------------------------------------------------------
@package_group.command("sign", short_help="Sign a package (writes FILE.sig).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--key",
    "key",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The Ed25519 private key (NAME.key from `cloacina keys generate`).",
)
def sign_command(file: str, key: str) -> None:
    """Sign package FILE with KEY; writes FILE.sig (a detached Ed25519 signature)."""
    data, archive = _open_package(file)
    try:
        sig = sign_archive(data, _read_file(key, "key"))
    except PackageError as exc:
        raise CliError(f"{key}: {exc}") from None
    path = _sig_path(file)
    path.write_bytes(sig)
    info = read_signature(data, sig)
    console = out_console()
    console.print(
        Text.assemble(
            ("Signed ", "bold green"),
            f"{archive.name} {archive.version} -> ",
            (str(path), "cyan"),
        )
    )
    console.print(f"  signer  {info.key}")
    console.print(f"  sha256  {archive.sha256}")


# ---- register --------------------------------------------------------------------------------
@package_group.command("register", short_help="Register a package in the database.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
@tenant_option
@click.option(
    "--signature",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The signature file [default: FILE.sig when it exists].",
)
@trusted_key_option
@click.option(
    "--require-signatures",
    is_flag=True,
    help="Refuse the package unless it is signed by a trusted key.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Take over workflow names another package already has: this package's workflows "
    "become the ones the plain names run (the other's stay reachable as PACKAGE::WORKFLOW).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the registered package as JSON.")
@click.pass_context
def register_command(
    ctx: click.Context,
    file: str,
    db: str | None,
    tenant: str | None,
    signature: str | None,
    trusted_keys: tuple[str, ...],
    require_signatures: bool,
    replace: bool,
    as_json: bool,
) -> None:
    """Register package FILE in the database, so runners and workers can run its workflows.

    A workflow name that another registered package already has is refused unless
    --replace. New runs take the highest registered version of a package (PEP 440 order),
    unless another one was promoted with `cloacina package promote`.
    """
    from cloacina import DefaultRunner

    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    data, archive = _open_package(file)
    sig_bytes, sig_path = _signature_for(file, signature)
    checked = require_signatures or bool(trusted_keys)
    sig_bytes = _checkable_signature(file, data, sig_bytes, sig_path, checked)
    require_tenant(url, tenant_name)
    try:
        with DefaultRunner(
            url,
            tenant=tenant_name,
            execute_tasks=False,
            require_signatures=require_signatures,
            trusted_keys=list(trusted_keys),
        ) as runner:
            package_id = runner.register_workflow(data, signature=sig_bytes, replace=replace)
            notes = _default_notes(runner, package_id, archive)
    except PackageError as exc:
        raise PackageFailed(f"cannot register {file}: {exc}") from None
    if as_json:
        echo_json(
            {
                "id": package_id,
                "package": archive.name,
                "version": archive.version,
                "workflows": [w.name for w in archive.manifest.workflows],
                "sha256": archive.sha256,
                "database": display_url(url),
                "tenant": tenant_name,
                "notes": notes,
            }
        )
        return
    console = out_console()
    console.print(
        Text.assemble(
            ("Registered ", "bold green"),
            (f"{archive.name} {archive.version}", "bold"),
            f" in {display_url(url)}"
            + ("" if tenant_name == "public" else f" (tenant {tenant_name})"),
        )
    )
    console.print(f"  id         {package_id}")
    console.print(f"  package    {archive.name}")
    console.print(f"  version    {archive.version}")
    console.print(f"  workflows  {', '.join(w.name for w in archive.manifest.workflows)}")
    console.print(f"  sha256     {archive.sha256}")
    for note in notes:
        err_console().print(Text(f"note: {note}", style="yellow"))


def _default_notes(runner: DefaultRunner, package_id: str, archive: PackageArchive) -> list[str]:
    """What new runs of the package's workflows will take, where it is not this version."""
    notes = []
    promoted = {p.id for p in runner.list_packages() if p.promoted}
    for spec in archive.manifest.workflows:
        try:
            wf = runner.resolve(spec.name)
        except WorkflowNotFoundError:  # pragma: no cover - it was registered a moment ago
            continue
        if wf.origin is None or wf.origin.package_id == package_id:
            continue
        if wf.package != archive.name:
            why = f"package {wf.package} has the name"
        else:
            why = "promoted" if wf.origin.package_id in promoted else "the highest version"
        notes.append(
            f"new runs of {spec.name!r} take {wf.origin.package} {wf.origin.version} ({why}), "
            f"not this version: run this one as "
            f"{archive.name}{SEPARATOR}{spec.name}@{archive.version}"
            + (
                f", or make it the default with `cloacina package promote {archive.name} "
                f"{archive.version}`"
                if wf.package == archive.name
                else ""
            )
        )
    return notes


# ---- list, promote, unregister ---------------------------------------------------------------
def _package_json(info: PackageInfo) -> dict[str, Any]:
    return {
        "package": info.package,
        "version": info.version,
        "id": info.id,
        "default": info.default,
        "promoted": info.promoted,
        "workflows": [{"name": n, "version": v} for n, v in info.workflow_versions],
        "sha256": info.sha256,
        "signed_by": info.signer,
        "registered_at": iso(to_datetime(info.registered_at)),
    }


def _sorted(packages: list[PackageInfo]) -> list[PackageInfo]:
    """By package name, then version (highest last)."""
    out: list[PackageInfo] = []
    for name in sorted({p.package for p in packages}):
        mine = [p for p in packages if p.package == name]
        order = version_order([p.version for p in mine])
        keyed = sorted(((order(p.version), i) for i, p in enumerate(mine)))
        out += [mine[i] for _key, i in keyed]
    return out


@package_group.command("list", short_help="List the registered packages.")
@db_option
@tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, db: str | None, tenant: str | None, as_json: bool) -> None:
    """List the packages registered in the database: every version, its workflows, and
    which version new runs take (the promoted one, else the highest)."""
    with open_registry(resolve_db(ctx, db), resolve_tenant(ctx, tenant)) as runner:
        packages = _sorted(runner.list_packages()) if runner is not None else []
    if as_json:
        echo_json([_package_json(p) for p in packages])
        return
    console = out_console()
    if not packages:
        console.print("no packages registered: register one with `cloacina package register FILE`")
        return
    table = new_table("Packages")
    for column in ("package", "version", "default", "workflows", "registered", "signed by"):
        table.add_column(column, overflow="fold")
    mark = "✓" if fancy(console) else "yes"
    for p in packages:
        table.add_row(
            p.package,
            p.version,
            (f"{mark} promoted" if p.promoted else mark) if p.default else "",
            ", ".join(p.workflows),
            fmt_time(to_datetime(p.registered_at)),
            p.signer or "",
        )
    console.print(table)


def _open_writer(ctx: click.Context, db: str | None, tenant: str | None) -> DefaultRunner:
    """A runner that executes nothing, on a database that must exist (nothing to change in
    a new one)."""
    from cloacina import DefaultRunner

    url = resolve_db(ctx, db)
    tenant_name = resolve_tenant(ctx, tenant)
    require_tenant(url, tenant_name)
    path = sqlite_file(url, tenant_name)
    if path is not None and not path.exists():
        raise CliError(
            f"no packages are registered in {display_url(url)}: there is no database at "
            f"{str(path)!r}"
        )
    return DefaultRunner(url, tenant=tenant_name, execute_tasks=False)


def _default_of(runner: DefaultRunner, name: str) -> PackageInfo | None:
    return next((p for p in runner.list_packages() if p.package == name and p.default), None)


@package_group.command("promote", short_help="Make a package version the default for new runs.")
@click.argument("name")
@click.argument("version", required=False)
@click.option(
    "--highest",
    is_flag=True,
    help="Undo a promotion: the highest registered version is the default again.",
)
@db_option
@tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def promote_command(
    ctx: click.Context,
    name: str,
    version: str | None,
    highest: bool,
    db: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Make VERSION of package NAME the default for new runs of its workflows, even when a
    higher version is registered. Every runner and worker on the database follows (it is
    stored there). `--highest` goes back to the highest version. Runs in flight keep
    their version."""
    if (version is None) == (not highest):
        raise CliError("give either VERSION or --highest")
    with _open_writer(ctx, db, tenant) as runner:
        try:
            runner.promote_package(name, None if highest else version)
        except PackageNotFoundError as exc:
            raise CliError(str(exc)) from None
        current = _default_of(runner, name)
    assert current is not None
    if as_json:
        echo_json(_package_json(current))
        return
    how = "promoted" if current.promoted else "the highest version"
    out_console().print(
        Text.assemble(
            (f"{name} {current.version}", "bold"),
            f" is the default for new runs ({how}): {', '.join(current.workflows)}",
        )
    )


@package_group.command("unregister", short_help="Remove a package version from the database.")
@click.argument("name")
@click.argument("version")
@db_option
@tenant_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def unregister_command(
    ctx: click.Context,
    name: str,
    version: str,
    db: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Remove VERSION of package NAME from the database. Refused while runs of it are
    unfinished (cancel them, or wait). Finished runs keep their history."""
    with _open_writer(ctx, db, tenant) as runner:
        removed = next(
            (p for p in runner.list_packages() if (p.package, p.version) == (name, version)),
            None,
        )
        try:
            runner.unregister_workflow(name, version)
        except PackageNotFoundError as exc:
            raise CliError(str(exc)) from None
        except InvalidStateError as exc:
            raise PackageFailed(f"cannot unregister {name} {version}: {exc}") from None
        current = _default_of(runner, name)
    if as_json:
        echo_json(
            {
                "package": name,
                "version": version,
                "id": removed.id if removed is not None else None,
                "default": current.version if current is not None else None,
            }
        )
        return
    console = out_console()
    console.print(Text.assemble(("Unregistered ", "bold green"), (f"{name} {version}", "bold")))
    if current is not None:
        console.print(f"  {name} {current.version} is the default for new runs")
    else:
        console.print(f"  no version of {name} is registered any more")
