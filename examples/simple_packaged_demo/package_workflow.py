"""Compile and Package: build this project into ``dist/simple_demo-1.0.0.cloacina``.

The same as running ``cloacina package build .`` here: the project is imported in a clean
process, every workflow is validated, the sources are byte-compiled, pure-Python
dependencies are vendored into ``lib/``, and a reproducible archive is written.
"""

from __future__ import annotations

from pathlib import Path

from cloacina.packaging.build import build_package

HERE = Path(__file__).resolve().parent


def main() -> Path:
    return build_package(HERE, HERE / "dist")


if __name__ == "__main__":
    print(f"wrote {main()}")
