"""Reading what the package commands are given: package, signature and key files (size
checked before they are read), and the failure of a package operation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.text import Text

from cloacina.cli.consoles import err_console
from cloacina.cli.errors import CliError
from cloacina.errors import PackageError, UnsafePackageError
from cloacina.packaging.archive import (
    MAX_SMALL_FILE_BYTES,
    PackageArchive,
    read_archive,
    read_file_capped,
    read_package_file,
)
from cloacina.packaging.signing import SIG_SUFFIX
from cloacina.packaging.verify import read_signature


class PackageFailed(CliError):
    """The operation ran and failed (a build error, a package that does not verify)."""

    exit_code = 1


def read_file(path: str, what: str = "package") -> bytes:
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


def sig_path(package: str) -> Path:
    return Path(package + SIG_SUFFIX)


def signature_for(package: str, signature: str | None) -> tuple[bytes | None, Path | None]:
    """The signature bytes to use: ``--signature F``, else ``FILE.sig`` when it exists."""
    if signature is not None:
        return read_file(signature, "signature"), Path(signature)
    default = sig_path(package)
    if default.is_file():
        return read_file(str(default), "signature"), default
    return None, None


def checkable_signature(
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


def open_package(path: str) -> tuple[bytes, PackageArchive]:
    data = read_file(path)
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
