"""``cloacina package sign``: a detached Ed25519 signature beside a package."""

from __future__ import annotations

import click
from rich.text import Text

from cloacina.cli.consoles import out_console
from cloacina.cli.errors import CliError
from cloacina.cli.package_files import open_package, read_file, sig_path
from cloacina.errors import PackageError
from cloacina.packaging.signing import sign_archive
from cloacina.packaging.verify import read_signature


@click.command("sign", short_help="Sign a package (writes FILE.sig).")
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
    data, archive = open_package(file)
    try:
        sig = sign_archive(data, read_file(key, "key"))
    except PackageError as exc:
        raise CliError(f"{key}: {exc}") from None
    path = sig_path(file)
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
