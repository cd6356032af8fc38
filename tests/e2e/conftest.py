"""Fixtures of the end-to-end tests (the CLI runs in subprocesses, see ``helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import FLOWS, Cli, Result, run_cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Run the CLI with ``tmp_path`` as the working directory."""

    def call(*args: str | Path, **kwargs: object) -> Result:
        kwargs.setdefault("cwd", tmp_path)
        return run_cli(*args, **kwargs)  # type: ignore[arg-type]

    return call


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """A module ``flows.py`` in ``tmp_path`` defining workflows greeting, broken and sleepy."""
    path = tmp_path / "flows.py"
    path.write_text(FLOWS, encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"
