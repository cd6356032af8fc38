"""``cloacina package register|list|promote|unregister``: the packages of a database, and
which version new runs take."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from cloacina.cli.actor import acts_locally
from cloacina.cli.consoles import err_console, fancy, out_console
from cloacina.cli.databases import display_url, require_tenant, sqlite_file
from cloacina.cli.errors import CliError
from cloacina.cli.formatting import fmt_time, iso
from cloacina.cli.json_output import echo_json
from cloacina.cli.options import db_option, resolve_db, resolve_tenant, tenant_option
from cloacina.cli.package_files import (
    PackageFailed,
    checkable_signature,
    open_package,
    signature_for,
    trusted_key_option,
)
from cloacina.cli.remote import open_client, remote_target, server_options, where_of
from cloacina.cli.render import new_table
from cloacina.cli.workflows import open_registry
from cloacina.errors import (
    InvalidStateError,
    PackageError,
    PackageNotFoundError,
    WorkflowNotFoundError,
)
from cloacina.model.namespace import SEPARATOR
from cloacina.model.status import to_datetime
from cloacina.packaging.archive import PackageArchive
from cloacina.registry.registry import PackageInfo, version_order

if TYPE_CHECKING:
    from cloacina.cli.remote import Service
    from cloacina.runner import DefaultRunner


# ---- register --------------------------------------------------------------------------------
@click.command("register", short_help="Register a package in the database.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
@tenant_option
@server_options
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
@acts_locally
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
    data, archive = open_package(file)
    sig_bytes, sig_path = signature_for(file, signature)
    checked = require_signatures or bool(trusted_keys)
    sig_bytes = checkable_signature(file, data, sig_bytes, sig_path, checked)
    client = open_client(ctx, tenant)
    if client is not None:
        with client:
            try:
                package_id = client.register_workflow(data, signature=sig_bytes, replace=replace)
            except PackageError as exc:
                raise PackageFailed(f"cannot register {file}: {exc}") from None
            notes = _remote_notes(client.list_packages(), package_id, archive)
        _show_registered(ctx, db, tenant, package_id, archive, notes, as_json)
        return
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
    _show_registered(ctx, db, tenant, package_id, archive, notes, as_json)


def _show_registered(
    ctx: click.Context,
    db: str | None,
    tenant: str | None,
    package_id: str,
    archive: PackageArchive,
    notes: list[str],
    as_json: bool,
) -> None:
    remote = remote_target(ctx)
    if as_json:
        echo_json(
            {
                "id": package_id,
                "package": archive.name,
                "version": archive.version,
                "workflows": [w.name for w in archive.manifest.workflows],
                "sha256": archive.sha256,
                "database": None if remote else display_url(resolve_db(ctx, db)),
                "server": remote[0] if remote else None,
                "tenant": resolve_tenant(ctx, tenant),
                "notes": notes,
            }
        )
        return
    console = out_console()
    console.print(
        Text.assemble(
            ("Registered ", "bold green"),
            (f"{archive.name} {archive.version}", "bold"),
            f" in {where_of(ctx, db, tenant)}",
        )
    )
    console.print(f"  id         {package_id}")
    console.print(f"  package    {archive.name}")
    console.print(f"  version    {archive.version}")
    console.print(f"  workflows  {', '.join(w.name for w in archive.manifest.workflows)}")
    console.print(f"  sha256     {archive.sha256}")
    for note in notes:
        err_console().print(Text(f"note: {note}", style="yellow"))


def _remote_notes(
    packages: list[PackageInfo], package_id: str, archive: PackageArchive
) -> list[str]:
    """:func:`_default_notes` from a server's package list: which version new runs of each
    of the package's workflows take, where it is not this one."""
    notes = []
    for spec in archive.manifest.workflows:
        holder = next((p for p in packages if p.default and spec.name in p.workflows), None)
        if holder is None or holder.id == package_id:
            continue
        if holder.package != archive.name:
            why = f"package {holder.package} has the name"
        else:
            why = "promoted" if holder.promoted else "the highest version"
        notes.append(
            f"new runs of {spec.name!r} take {holder.package} {holder.version} ({why}), not "
            f"this version: run this one as {archive.name}{SEPARATOR}{spec.name}@{archive.version}"
        )
    return notes


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


@click.command("list", short_help="List the registered packages.")
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, db: str | None, tenant: str | None, as_json: bool) -> None:
    """List the packages registered in the database: every version, its workflows, and
    which version new runs take (the promoted one, else the highest)."""
    client = open_client(ctx, tenant)
    if client is not None:
        with client:
            packages = _sorted(client.list_packages())
    else:
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


def _open_writer(ctx: click.Context, db: str | None, tenant: str | None) -> Service:
    """The --server's client, or a runner that executes nothing, on a database that must
    exist (nothing to change in a new one)."""
    client = open_client(ctx, tenant)
    if client is not None:
        return client
    return _open_local_writer(ctx, db, tenant)


def _open_local_writer(ctx: click.Context, db: str | None, tenant: str | None) -> DefaultRunner:
    """A runner that executes nothing, on a database that must exist."""
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


def _default_of(runner: Service, name: str) -> PackageInfo | None:
    return next((p for p in runner.list_packages() if p.package == name and p.default), None)


@click.command("promote", short_help="Make a package version the default for new runs.")
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
@acts_locally
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
    if remote_target(ctx) is not None:
        raise CliError(
            "package promote works on the database (--db); the HTTP API of --server has no "
            "promotion yet"
        )
    with _open_local_writer(ctx, db, tenant) as runner:
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


@click.command("unregister", short_help="Remove a package version from the database.")
@click.argument("name")
@click.argument("version")
@db_option
@tenant_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@acts_locally
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
