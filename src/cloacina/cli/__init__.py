"""The ``cloacina`` command line (placeholder until the CLI lands)."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("the cloacina CLI is not built yet")
