"""``cloacina keys generate|fingerprint``: Ed25519 keys that sign packages."""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from cloacina.cli.consoles import out_console
from cloacina.cli.errors import CliError
from cloacina.errors import PackageError
from cloacina.packaging.signing import generate_keypair, key_fingerprint, write_keypair


@click.group("keys")
def keys_group() -> None:
    """Create and identify the Ed25519 keys that sign packages.

    \b
    cloacina keys generate --name team       # team.key (secret, 0600) + team.pub
    cloacina package sign FILE --key team.key
    cloacina package verify FILE --trusted-key team.pub
    """


@keys_group.command("generate", short_help="Generate an Ed25519 key pair (NAME.key, NAME.pub).")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Directory to write the key files to (created if missing).",
)
@click.option("--name", default="cloacina", show_default=True, help="Writes NAME.key and NAME.pub.")
def generate_command(directory: str, name: str) -> None:
    """Generate an Ed25519 key pair: NAME.key (private, mode 0600) and NAME.pub."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise CliError(f"--name {name!r} must be a plain file name without a directory")
    pair = generate_keypair()
    try:
        private, public = write_keypair(pair, Path(directory), name)
    except PackageError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write the keys into {directory!r}: {exc}") from None
    console = out_console()
    console.print(Text("Generated an Ed25519 key pair", style="bold green"))
    console.print(f"  private key  {private}  (keep it secret; sign with it)")
    console.print(f"  public key   {public}  (give it to runners as a trusted key)")
    console.print(f"  fingerprint  {pair.fingerprint}")


@keys_group.command("fingerprint", short_help="Print the fingerprint of a public key.")
@click.argument("pubfile", type=click.Path(exists=True, dir_okay=False))
def fingerprint_command(pubfile: str) -> None:
    """Print the fingerprint of public key PUBFILE (how signatures name their signer)."""
    try:
        pem = Path(pubfile).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {pubfile!r}: {exc.strerror or exc}") from None
    try:
        click.echo(key_fingerprint(pem))
    except (PackageError, ValueError, TypeError) as exc:
        raise CliError(f"{pubfile} is not an Ed25519 public key (PEM): {exc}") from None
