#!/usr/bin/env python3
"""Developer entry point that needs nothing but python3 (3.11+).

    python3 dev.py demo     set up .venv (first time only) and run the packaged-workflow demo
                            (examples/simple_packaged_demo/end_to_end_demo.py)
    python3 dev.py test     set up .venv and run the whole test suite (3 processes;
                            CLOACINA_TEST_WORKERS=0 for one)
    python3 dev.py lint     ruff (lint + format check) and mypy --strict
    python3 dev.py bench    the benchmarks beside the peers (see bench/README.md)

Extra arguments after the command go to the underlying tool (pytest, cloacina, bench/run.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("CLOACINA_VENV", ROOT / ".venv"))
BIN = VENV / "bin"
PY = BIN / "python"
STAMP = VENV / ".cloacina-installed"


def ensure_venv() -> None:
    """Create .venv and install the project with its dev extras (again if pyproject changed)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under any python3
        sys.exit(f"Cloacina needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    if not PY.exists():
        print(f"creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing cloacina and its dependencies (first run only) ...", flush=True)
    run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([str(PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev,postgres,server]"])
    STAMP.touch()


def run(cmd: list[str]) -> None:
    code = subprocess.call(cmd, cwd=ROOT)
    if code:
        sys.exit(code)


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    command, rest = args[0], args[1:]
    ensure_venv()
    if command == "demo":
        demo = ROOT / "examples" / "simple_packaged_demo" / "end_to_end_demo.py"
        run([str(PY), str(demo), *rest])
    elif command == "test":
        # Independent tests in parallel (pytest-xdist): most wait on subprocesses, sockets and
        # the database, so three processes keep a 2-core machine busy. CLOACINA_TEST_WORKERS=0
        # runs them in this process.
        workers = os.environ.get("CLOACINA_TEST_WORKERS", "3")
        parallel = ["-n", workers] if workers not in ("", "0", "1") else []
        run([str(PY), "-m", "pytest", "-q", *parallel, *rest])
    elif command == "lint":
        run([str(BIN / "ruff"), "check", "src", "tests", "bench", "examples", "scripts", "dev.py"])
        run(
            [
                str(BIN / "ruff"),
                "format",
                "--check",
                "src",
                "tests",
                "bench",
                "examples",
                "scripts",
                "dev.py",
            ]
        )
        run([str(BIN / "mypy")])
    elif command == "bench":
        run([str(PY), "bench/run.py", *(rest or ["all"])])
    else:
        sys.exit(f"unknown command {command!r}; use demo, test, lint or bench")


if __name__ == "__main__":
    main()
