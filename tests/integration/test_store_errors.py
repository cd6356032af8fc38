"""Clear errors when a database cannot be used: a ``StoreError`` that says what is wrong and
what to do, raised quickly — never a driver's traceback, never a hang, never a silently
different database.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloacina import DefaultRunner, StoreError
from cloacina.store import open_store

pytestmark = pytest.mark.timeout(60)

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"


def opening(url: str, **settings: object) -> list[Callable[[], object]]:
    """The two ways to open a database: the runner and the store."""
    return [
        lambda: DefaultRunner(url, execute_tasks=False, **settings),  # type: ignore[arg-type]
        lambda: open_store(url, **settings),  # type: ignore[arg-type]
    ]


# ---- URLs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["mysql://x", "mysql://user@db.example/app", "redis://localhost"])
def test_unsupported_url_scheme_names_the_url(url: str) -> None:
    for open_ in opening(url):
        with pytest.raises(StoreError) as caught:
            open_()
        message = str(caught.value)
        assert repr(url) in message
        assert "sqlite:///" in message and "postgresql://" in message  # what to use instead


def test_unparsable_postgres_url_names_the_url() -> None:
    url = "postgresql+bad driver://x"
    for open_ in opening(url):
        with pytest.raises(StoreError, match="invalid PostgreSQL URL") as caught:
            open_()
        assert repr(url) in str(caught.value)
        assert "postgresql://user@host:5432/db" in str(caught.value)  # the expected shape


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:port/x",
        "postgresql://postgres@127.0.0.1:5432:5432/x",
        "postgresql://postgres@[::1/x",
    ],
)
def test_postgres_url_with_a_bad_port_names_the_url(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert repr(url) in str(caught.value)


@pytest.mark.parametrize("url", ["postgresql:x", "postgres:db", "postgresql:postgres@localhost"])
def test_postgres_url_without_slashes_is_refused_not_taken_for_a_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL with a scheme but no ``//`` is an error, not the name of a new SQLite file."""
    monkeypatch.chdir(tmp_path)
    try:
        for open_ in opening(url):
            with pytest.raises(StoreError, match="malformed database URL") as caught:
                open_()
            assert repr(url) in str(caught.value)
            assert "postgresql://user@host:5432/db" in str(caught.value)
    finally:
        assert list(tmp_path.iterdir()) == [], "a SQLite file was created for a PostgreSQL URL"


# ---- servers that cannot be reached -----------------------------------------------------------
def test_unreachable_server_says_it_cannot_connect_quickly() -> None:
    for open_ in opening(UNREACHABLE, connect_timeout=1):
        began = time.monotonic()
        with pytest.raises(StoreError) as caught:
            open_()
        assert time.monotonic() - began < 5
        message = str(caught.value)
        assert "cannot open the PostgreSQL database at 127.0.0.1:1/x" in message
        assert "Connection refused" in message or "connection failed" in message
        assert "it could not be reached" in message
        assert "pg_isready -h 127.0.0.1 -p 1" in message  # how to check
        assert "?" not in message  # libpq's advice is replaced by ours, not stacked


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


def test_server_that_never_answers_times_out_with_connect_timeout(silent_server: int) -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{silent_server}/x"
    began = time.monotonic()
    with pytest.raises(StoreError) as caught:
        open_store(url, connect_timeout=1)
    # libpq waits at least 2 s whatever connect_timeout says; never the 10 s default.
    assert time.monotonic() - began < 8
    message = str(caught.value)
    assert f"127.0.0.1:{silent_server}/x" in message
    assert "timeout" in message
    assert "s3cret" not in message  # the password never shows in the error


# ---- a schema made by a newer cloacina --------------------------------------------------------
NEWER = r"created by a newer cloacina.*[Uu]pgrade cloacina"


@pytest.mark.parametrize("tenant", ["public", "acme"])
def test_postgres_schema_of_a_newer_version_is_refused(postgres_url: str, tenant: str) -> None:
    import psycopg

    open_store(postgres_url, tenant=tenant).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'UPDATE "{tenant}".alembic_version SET version_num = %s', ("9999",))
    for open_ in opening(postgres_url, tenant=tenant):
        with pytest.raises(StoreError, match=NEWER) as caught:
            open_()
        assert "'9999'" in str(caught.value)
        assert "pip install -U cloacina" in str(caught.value)
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # left as it was found
        row = conn.execute(f'SELECT version_num FROM "{tenant}".alembic_version').fetchone()
    assert row == ("9999",)


def test_sqlite_file_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    url = f"sqlite:///{path}"
    open_store(url).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    for open_ in opening(url):
        with pytest.raises(StoreError, match=NEWER) as caught:
            open_()
        assert "'9999'" in str(caught.value)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999",)]


# ---- the PostgreSQL driver is not installed ---------------------------------------------------
BLOCK_PSYCOPG = textwrap.dedent(
    """\
    import importlib.abc
    import sys


    class BlockPsycopg(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("psycopg", "psycopg_binary", "psycopg_c"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, BlockPsycopg())

    from cloacina import DefaultRunner, StoreError
    from cloacina.store import open_store

    for open_ in (
        lambda: open_store(sys.argv[1], connect_timeout=1),
        lambda: DefaultRunner(sys.argv[1], execute_tasks=False, connect_timeout=1),
    ):
        try:
            open_()
        except StoreError as exc:
            print("StoreError:", exc)
        else:
            print("opened")
    print("psycopg imported:", "psycopg" in sys.modules)
    """
)


def test_missing_psycopg_driver_says_what_to_install() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_PSYCOPG, UNREACHABLE],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stdout
    for line in lines[:2]:
        assert line.startswith("StoreError:"), line
        assert "pip install 'cloacina[postgres]'" in line
        assert "psycopg" in line
    assert lines[2] == "psycopg imported: False"
