"""Fixtures shared by every test tier: PostgreSQL databases for the tests that need one.

Tests reach PostgreSQL through ``CLOACINA_TEST_POSTGRES_URL`` (default: the machine's server
at ``postgresql://postgres@127.0.0.1:5432/test``). Each test gets a database of its own,
dropped afterwards. Without a reachable server the PostgreSQL tests are skipped with the
reason — except under ``CI=true``, where they must run and an unreachable server fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
PG_ADMIN_URL = os.environ.get("CLOACINA_TEST_POSTGRES_URL", DEFAULT_PG)

_reachable: bool | None = None
_why = ""


def postgres_available() -> bool:
    global _reachable, _why
    if _reachable is None:
        try:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
            _reachable = True
        except Exception as exc:  # ImportError or a connection error
            _reachable = False
            _why = f"PostgreSQL at {PG_ADMIN_URL} is not usable ({exc})"
    return _reachable


def require_postgres() -> None:
    """Skip (or, under CI=true, fail) when PostgreSQL cannot be reached."""
    if postgres_available():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{_why}; under CI=true the PostgreSQL tests must run")
    pytest.skip(f"{_why}; set CLOACINA_TEST_POSTGRES_URL to run the PostgreSQL tests")


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def database_url(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def postgres_database() -> Iterator[Callable[[], str]]:
    """Make fresh PostgreSQL databases for this test (URLs); all are dropped afterwards."""
    require_postgres()
    made: list[str] = []

    def make() -> str:
        name = f"cloacina_test_{uuid.uuid4().hex[:12]}"
        _admin_execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return database_url(name)

    yield make
    for name in made:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_database: Callable[[], str]) -> str:
    """A fresh PostgreSQL database for this test."""
    return postgres_database()
