"""Opening a store: failed commits never wedge it, reads run no DDL and work on databases
this process cannot write, and clients leave nothing behind."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest

from cloacina import DefaultRunner


# ---- nothing leaks -----------------------------------------------------------------------------
def test_submit_only_clients_leave_no_package_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three clients used to leave three ``cloacina-packages-*`` temporary directories: a
    client builds no package loader."""
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    assert tempfile.gettempdir() == str(private_tmp)
    url = f"sqlite:///{tmp_path / 't.db'}"
    for _ in range(3):
        with DefaultRunner(url, execute_tasks=False) as client:
            assert client.list_executions() == []
    assert list(private_tmp.glob("cloacina-packages-*")) == []
