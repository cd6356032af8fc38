"""``cloacina package new|build|inspect|verify|sign|register|list|promote|unregister``:
workflow packages.

A package is a ``.cloacina`` archive built from a workflow project (DESIGN.md §6). The
commands are thin: the work is in :mod:`cloacina.packaging`. One module per idea:
:mod:`~cloacina.cli.package_build` (new, build), :mod:`~cloacina.cli.package_inspect`
(inspect, verify), :mod:`~cloacina.cli.package_sign` (sign) and
:mod:`~cloacina.cli.package_register` (register, list, promote, unregister); reading package,
signature and key files is :mod:`~cloacina.cli.package_files`.
"""

from __future__ import annotations

import click

from cloacina.cli.package_build import build_command, new_command
from cloacina.cli.package_inspect import inspect_command, verify_command
from cloacina.cli.package_register import (
    list_command,
    promote_command,
    register_command,
    unregister_command,
)
from cloacina.cli.package_sign import sign_command


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


for _command in (
    new_command,
    build_command,
    inspect_command,
    verify_command,
    sign_command,
    register_command,
    list_command,
    promote_command,
    unregister_command,
):
    package_group.add_command(_command)
