"""``cloacina package inspect|verify``: what a package holds, and whether it matches its
own code (and a trusted signature)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from cloacina.cli.consoles import err_console, fancy, out_console
from cloacina.cli.json_output import echo_json
from cloacina.cli.package_files import (
    PackageFailed,
    checkable_signature,
    open_package,
    read_file,
    signature_for,
    trusted_key_option,
)
from cloacina.cli.render import new_table
from cloacina.errors import PackageError
from cloacina.packaging.archive import PackageArchive
from cloacina.packaging.build import fmt_size
from cloacina.packaging.manifest import TaskSpec, WorkflowSpec
from cloacina.packaging.verify import SignatureInfo, read_signature, verify_package


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


@click.command("inspect", short_help="Show what a package holds.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def inspect_command(file: str, as_json: bool) -> None:
    """Show what package FILE holds: metadata, workflows and their task trees, files."""
    _, archive = open_package(file)
    sig_bytes, sig_path = signature_for(file, None)
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
    title = f"Files ({len(archive.files)}, {fmt_size(total)} uncompressed)"
    table = new_table(title)
    table.min_width = min(len(title), console.width)  # the title is not folded to the table
    # A path folds at 80 columns, never cut: the counts and sizes keep their width.
    table.add_column("path", overflow="fold")
    table.add_column("files", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
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
@click.command("verify", short_help="Check a package against its own code (and signature).")
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
    data = read_file(file)
    sig_bytes, sig_path = signature_for(file, signature)
    sig_bytes = checkable_signature(file, data, sig_bytes, sig_path, bool(trusted_keys))
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
