"""pytest plugin that runs the vendored cloaca suite on ``cloacina.compat.cloaca``.

Loaded with ``-p cloaca_alias --noconftest`` in place of the suite's own conftest.py (which
stays in suite/ unchanged): it makes ``import cloaca`` give the compatibility module before
any test module is imported, and provides the one fixture the tests use, ``shared_runner``,
on the database the harness chose. ``CLOACA_BACKEND`` picks it as upstream does: ``sqlite``
(default) a fresh temporary file; ``postgres`` the URL in ``CLOACA_TEST_PG_URL`` (upstream's
is hard-coded to a server that does not exist here).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloacina.compat.cloaca as _compat

sys.modules["cloaca"] = _compat


def get_test_db_url() -> tuple[str, Path | None]:
    """The runner's URL, and the SQLite file to remove afterwards (None on PostgreSQL)."""
    backend = os.environ.get("CLOACA_BACKEND", "sqlite").lower()
    if backend == "postgres":
        return os.environ["CLOACA_TEST_PG_URL"], None
    if backend != "sqlite":
        raise ValueError(
            f"Unsupported backend: {backend}. Set CLOACA_BACKEND to sqlite or postgres."
        )
    fd, path = tempfile.mkstemp(suffix=".db")  # an existing, empty file, as upstream makes
    os.close(fd)
    return f"sqlite://{path}", Path(path)


@pytest.fixture(scope="session")
def shared_runner() -> Iterator[Any]:
    """One runner for the whole session (upstream's fixture of the same name)."""
    url, path = get_test_db_url()
    runner = _compat.DefaultRunner(url)
    try:
        yield runner
    finally:
        runner.shutdown()
        if path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
